"""Checking a send request: the part that parses what the user wrote.

Finding links, deciding tracking (which reads the body as text) and turning an
HTML body into its plain-text alternative all cost time in proportion to the
body. So these functions run in a worker process (`CpuPool`), never on the
event loop that answers pixels (DESIGN rule 1). They import only `core`, take
and return plain picklable data, and report a bad request as a `Rejected`
value instead of raising (an exception would not survive the trip back).

The cheap checks, sizes and counts, come first and run on the loop before
anything is sent here: `check_sizes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from mailbeacon.core.addresses import (
    InvalidAddress,
    Mailbox,
    mailbox_problems,
    parse_mailbox,
    parse_mailboxes,
)
from mailbeacon.core.compose import (
    MAX_BODY_CHARS,
    MAX_LINKS,
    MAX_RECIPIENTS,
    MAX_SUBJECT,
    Draft,
    InvalidRequest,
    make_draft,
)
from mailbeacon.core.limits import MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS
from mailbeacon.core.mime import new_message_id
from mailbeacon.core.policy import Switches, TrackingDecision, decide, link_problem_codes
from mailbeacon.core.text import html_to_text

# Raw characters of one recipient field (To, Cc or Bcc) as typed, checked before any
# parsing: room for MAX_RECIPIENTS mailboxes of up to 1000 characters and separators.
MAX_RECIPIENT_CHARS = MAX_RECIPIENTS * 1002


@dataclass(frozen=True, slots=True)
class SendInput:
    """What a person asks to send, straight from a form, the API or the CLI."""

    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    subject: str = ""
    html: str | None = None
    text: str | None = None
    track_opens: bool | None = None  # None: the user's last choice (S6)
    track_links: bool | None = None
    # The composer sends HTML only; its plain-text part is made from it (off the loop).
    text_from_html: bool = False


@dataclass(frozen=True, slots=True)
class SenderProfile:
    """The parts of a user that sending reads: picklable, unlike the ORM row."""

    email: str
    display_name: str
    open_tracking: bool
    link_tracking: bool
    last_track_opens: bool
    last_track_links: bool


@dataclass(frozen=True, slots=True)
class Rejected:
    """An InvalidRequest, as data: `InvalidRequest(field, code, **params)` rebuilds it."""

    field: str
    code: str
    params: dict[str, object]

    def error(self) -> InvalidRequest:
        return InvalidRequest(self.field, self.code, **self.params)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A checked request: everything needed to store it, without echoing the bodies back."""

    sender: str  # header form
    recipients: tuple[tuple[str, str, str], ...]  # (field, address, name), each address once
    subject: str
    html_blank: bool
    text_blank: bool
    # The plain-text part made from the HTML: the composer's always, and the API's and
    # CLI's when they give only HTML, so every HTML mail is multipart/alternative.
    generated_text: str | None
    links: tuple[str, ...]  # the links that will be tracked (empty when links are not)
    link_count: int  # trackable links found, tracked or not
    decision: TrackingDecision
    # Stored reason codes: the policy's, then links left untracked on purpose and why.
    untracked_reasons: tuple[str, ...]
    message_id_header: str
    # Where the invisible honeypot link of tracked HTML mail leads: the installation's
    # root, harmless and never an open redirect. None when there is none to add.
    # Not one of `links`: it counts against no limit and never enters the plain text.
    honeypot_url: str | None = None
    # The HTML to store when it is not the request's: bare URLs made links (linkify).
    linked_html: str | None = None


def check_sizes(request: SendInput) -> None:
    """The cheap checks, on lengths and counts only: run before any parsing, on the loop."""
    fields = (("to", request.to), ("cc", request.cc), ("bcc", request.bcc))
    if sum(len(values) for _, values in fields) > MAX_RECIPIENTS:
        raise InvalidRequest("to", "too_many_recipients", num=MAX_RECIPIENTS)
    for name, values in fields:
        if sum(len(value) for value in values) > MAX_RECIPIENT_CHARS:
            raise InvalidRequest(name, "too_long", num=MAX_RECIPIENT_CHARS)
    if len(request.subject) > MAX_SUBJECT:
        raise InvalidRequest("subject", "too_long", num=MAX_SUBJECT)
    for name, body in (("html", request.html), ("text", request.text)):
        if body is not None and len(body) > MAX_BODY_CHARS:
            raise InvalidRequest(name, "too_long", num=MAX_BODY_CHARS)


def megabytes(size: int) -> str:
    """A size as people read it: one decimal place of MB (1 MB = 1,048,576 bytes)."""
    return f"{size / (1024 * 1024):.1f} MB"


def file_size(size: int) -> str:
    """A file's size as people read it: KB below a tenth of a MB, else MB."""
    return f"{(size + 1023) // 1024} KB" if size < 104_858 else megabytes(size)


def check_attachments(sizes: list[int]) -> None:
    """Count and total size of the files attached, on lengths only (before any is stored)."""
    if len(sizes) > MAX_ATTACHMENTS:
        raise InvalidRequest("attachments", "too_many_attachments", num=MAX_ATTACHMENTS)
    total = sum(sizes)
    if total > MAX_ATTACHMENT_BYTES:
        raise InvalidRequest(
            "attachments",
            "attachments_too_big",
            size=megabytes(total),
            limit=megabytes(MAX_ATTACHMENT_BYTES),
        )


def _boxes(name: str, values: list[str]) -> list[Mailbox]:
    try:
        return parse_mailboxes(values)
    except InvalidAddress as exc:
        raise InvalidRequest.from_address(name, exc) from exc


def _draft(profile: SenderProfile, request: SendInput, text: str | None) -> Draft:
    sender = parse_mailbox(str(Mailbox(profile.email, profile.display_name)))
    html = request.html if request.html is not None and request.html.strip() else None
    text = text if text is not None and text.strip() else None
    return make_draft(
        sender,
        to=_boxes("to", request.to),
        cc=_boxes("cc", request.cc),
        bcc=_boxes("bcc", request.bcc),
        subject=request.subject,
        html=html,
        text=text,
    )


def honeypot_url(public_url: str) -> str:
    """The honeypot's destination: the installation's public root."""
    return public_url.rstrip("/") + "/"


def _is_ours(url: str, public_url: str) -> bool:
    return url.startswith((f"{public_url}/c/", f"{public_url}/o/"))


def _decide(
    profile: SenderProfile, request: SendInput, draft: Draft, links: list[str]
) -> TrackingDecision:
    want_opens = profile.last_track_opens if request.track_opens is None else request.track_opens
    want_links = profile.last_track_links if request.track_links is None else request.track_links
    return decide(
        Switches(profile.open_tracking, profile.link_tracking),
        want_opens=want_opens,
        want_links=want_links,
        html=draft.html,
        text=draft.text,
        has_links=bool(links),
    )


def derives_text(request: SendInput) -> bool:
    """Whether the plain-text part is made from the HTML: the composer asks for it, and a
    request with HTML but no text gets it too (a mail without a text part looks like spam
    to filters and is unreadable in text-only clients)."""
    if request.text_from_html:
        return True
    has_text = request.text is not None and bool(request.text.strip())
    return not has_text and request.html is not None and bool(request.html.strip())


def _text_of(request: SendInput) -> str | None:
    if derives_text(request):
        html = request.html or ""
        return html_to_text(html) if html.strip() else None
    return request.text


def prepare(profile: SenderProfile, request: SendInput, public_url: str) -> Prepared | Rejected:
    """Check a request completely and decide its tracking (runs in a worker process)."""
    try:
        check_sizes(request)
        text = _text_of(request)
        draft = _draft(profile, request, text)
        links = [url for url in draft.links() if not _is_ours(url, public_url)]
        decision = _decide(profile, request, draft, links)
        if len(links) > MAX_LINKS:
            raise InvalidRequest(
                "html" if draft.html is not None else "text", "too_many_links", num=MAX_LINKS
            )
    except InvalidRequest as exc:
        return Rejected(exc.field, exc.code, dict(exc.params))
    untracked = [reason.value for reason in decision.reasons]
    if decision.track_links:  # links left as written on purpose, and why (rule 5)
        untracked += link_problem_codes(problem for _, problem in draft.link_problems())
    return Prepared(
        sender=str(draft.sender),
        recipients=tuple((name, box.address, box.name) for name, box in draft.recipients),
        subject=draft.subject,
        html_blank=draft.html is None,
        text_blank=draft.text is None,
        generated_text=draft.text if derives_text(request) else None,
        links=tuple(links) if decision.track_links else (),
        link_count=len(links),
        decision=decision,
        untracked_reasons=tuple(untracked),
        message_id_header=new_message_id(draft.sender.address.rpartition("@")[2]),
        honeypot_url=honeypot_url(public_url) if decision.track_links and draft.html else None,
        linked_html=draft.html if draft.html is not None and draft.html != request.html else None,
    )


def address_problems(request: SendInput) -> list[Rejected]:
    """Every address problem of every field, to show them all at once (runs in a worker
    process, like `prepare`, since it parses what was typed)."""
    return [
        Rejected(
            (error := InvalidRequest.from_address(name, problem)).field, error.code, error.params
        )
        for name, values in (("to", request.to), ("cc", request.cc), ("bcc", request.bcc))
        for problem in mailbox_problems(values)
    ]


def preview(profile: SenderProfile, request: SendInput, public_url: str) -> Prepared | None:
    """The composer's "what will not be tracked", while the user is still typing.

    The body alone decides tracking, so a recipient or subject that is still
    wrong falls back to a placeholder (the sender) instead of hiding the note.
    """
    placeholder = replace(request, to=[profile.email], cc=[], bcc=[], subject="")
    for attempt in (request, placeholder):
        result = prepare(profile, attempt, public_url)
        if isinstance(result, Prepared):
            # Not needed: spare the trip back.
            return replace(result, generated_text=None, linked_html=None)
        if result.code == "too_many_links":
            return None
    return None
