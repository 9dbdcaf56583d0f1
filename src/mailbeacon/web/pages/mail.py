"""Pages: the mail list, the composer, the message page and contacts (S3 S5 S6 S8 S10 S11 S13 B1).

Handlers stay thin: queries live in `store.queries` (all scoped by user),
the tracking policy in `core.policy` via `mail.sending`, and this module only
turns rows into small view objects the templates render. The open and link
icons (S8) are built in one place (`track_icons`) so the list, the message
page and the contact page always agree on faded, solid and untracked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from mailbeacon.core.compose import REQUEST_PROBLEMS, Draft, InvalidRequest
from mailbeacon.core.hits import Verdict
from mailbeacon.core.policy import N_, REASON_TEXT, Untracked
from mailbeacon.core.text import html_to_text
from mailbeacon.mail.sending import SendInput, draft_from, trackable_links, tracking_for
from mailbeacon.store import queries
from mailbeacon.store.db import sessions
from mailbeacon.store.queries import Activity, TimelineEntry
from mailbeacon.store.tables import Message, Recipient, User
from mailbeacon.web.auth import SignedIn, require_csrf, require_user
from mailbeacon.web.i18n import Localizer
from mailbeacon.web.paging import pager, url_with
from mailbeacon.web.render import localizer_for, render

router = APIRouter(include_in_schema=False)
Current = Annotated[SignedIn, Depends(require_user)]
Checked = Annotated[SignedIn, Depends(require_csrf)]

MAX_PAGE = 100_000
MAX_ID = 2**63 - 1
MAX_PREFILL = 2_000
MAX_ADDRESS = 320
SHOWN_RECIPIENTS = 2

# Which stored reasons explain missing open tracking, and which missing link tracking.
OPEN_REASONS = frozenset(
    {
        Untracked.OPENS_SWITCH_OFF,
        Untracked.OPENS_TOGGLE_OFF,
        Untracked.NO_HTML_PART,
        Untracked.EMPTY_BODY,
    }
)
LINK_REASONS = frozenset(
    {Untracked.LINKS_SWITCH_OFF, Untracked.LINKS_TOGGLE_OFF, Untracked.NO_LINKS}
)
SWITCH_REASONS = frozenset({Untracked.OPENS_SWITCH_OFF, Untracked.LINKS_SWITCH_OFF})

# How each verdict reads in the timeline: a label and, when not counted, why not (B3).
VERDICTS: dict[str, tuple[str, str]] = {
    Verdict.HUMAN: (N_("Person"), ""),
    Verdict.PREFETCH: (
        N_("Prefetch"),
        N_("Fetched ahead of time by a mail client or privacy service, not by a person."),
    ),
    Verdict.HEAD: (
        N_("Link checker"),
        N_("A HEAD request: made by link checkers and scanners, never by a person reading."),
    ),
}
OTHER_VERDICT = (N_("Other"), N_("Not counted as a person opening or clicking."))


# ---------------------------------------------------------------------------
# Tracking icons (S8): one builder for the list, the message and the contact.


@dataclass(frozen=True, slots=True)
class TipLine:
    """One line of a tooltip: when, by whom, and for clicks which link."""

    at: datetime
    who: str
    url: str | None


@dataclass(frozen=True, slots=True)
class TrackIcon:
    """An open or link icon and its tooltip, ready for `macros/tracking.html`."""

    kind: str  # "open" or "click"
    dom_id: str
    tracked: bool
    reason: str  # English text (translated in the template) when not tracked
    count: int
    lines: tuple[TipLine, ...]
    more: int
    failed: bool = False

    @property
    def state(self) -> str:
        if not self.tracked:
            return "untracked"
        return "solid" if self.count else "faded"


def _reasons(codes: Iterable[str]) -> list[Untracked]:
    known = {reason.value for reason in Untracked}
    return [Untracked(code) for code in codes if code in known]


def _icon(
    kind: str,
    dom_id: str,
    *,
    tracked: bool,
    reasons: list[Untracked],
    count: int,
    activity: Iterable[Activity],
    failed: bool,
) -> TrackIcon:
    relevant = OPEN_REASONS if kind == "open" else LINK_REASONS
    fallback = (
        N_("Open tracking was off for this email.")
        if kind == "open"
        else N_("Link tracking was off for this email.")
    )
    reason = next((REASON_TEXT[r] for r in reasons if r in relevant), fallback)
    lines = tuple(
        TipLine(a.occurred_at, a.name or a.address, a.url) for a in activity if a.kind == kind
    )[: queries.TIP_LINES]
    return TrackIcon(
        kind=kind,
        dom_id=dom_id,
        tracked=tracked,
        reason="" if tracked else reason,
        count=count,
        lines=lines,
        more=max(0, count - len(lines)),
        failed=failed,
    )


def track_icons(
    scope: str,
    row: Message | Recipient,
    message: Message,
    activity: Iterable[Activity],
) -> tuple[TrackIcon, TrackIcon]:
    """The open and link icons for a message, or for one recipient's copy of it."""
    lines = list(activity)
    reasons = _reasons(message.untracked_reasons)
    failed = isinstance(row, Recipient) and row.status == "failed"
    common: dict[str, Any] = {"reasons": reasons, "activity": lines, "failed": failed}
    return (
        _icon(
            "open",
            f"{scope}-open",
            tracked=message.track_opens,
            count=row.open_count,
            **common,
        ),
        _icon(
            "click",
            f"{scope}-click",
            tracked=message.track_links,
            count=row.click_count,
            **common,
        ),
    )


# ---------------------------------------------------------------------------
# Small helpers for query strings and paging.


def page_number(value: str) -> int:
    """A lenient ?page=: anything odd is page 1, never an error page."""
    return min(int(value), MAX_PAGE) if value.isdigit() and int(value) > 0 else 1


def contact_url(address: str) -> str:
    return "/contacts/" + quote(address, safe="@")


def compose_url(address: str) -> str:
    return url_with("/mail/new", to=address)


def _database(request: Request) -> Any:
    return sessions(request.app.state.runtime.engine)()


def _links() -> dict[str, Any]:
    """URL builders the templates use."""
    return {"contact_url": contact_url, "compose_url": compose_url}


# ---------------------------------------------------------------------------
# The mail list (S8, S13).


@dataclass(frozen=True, slots=True)
class ListItem:
    message: Message
    shown: list[Recipient]
    more: int
    opens: TrackIcon
    clicks: TrackIcon


def list_item(row: queries.MailRow) -> ListItem:
    opens, clicks = track_icons(f"m{row.message.id}", row.message, row.message, row.activity)
    return ListItem(
        message=row.message,
        shown=row.recipients[:SHOWN_RECIPIENTS],
        more=max(0, len(row.recipients) - SHOWN_RECIPIENTS),
        opens=opens,
        clicks=clicks,
    )


@router.get("/mail")
async def mail_list(
    request: Request, current: Current, page: str = "1", tracked: str = "", q: str = ""
) -> HTMLResponse:
    """The user's sent mail, newest first; `tracked` and `q` combine and survive paging."""
    only_tracked = tracked == "1"
    q = q.strip()[: queries.MAX_SEARCH]
    number = page_number(page)
    async with _database(request) as db:
        result = await queries.mail_page(
            db, current.user.id, page=number, tracked=only_tracked, q=q
        )
    filters: dict[str, str | int | None] = {"tracked": "1" if only_tracked else None, "q": q}
    return await render(
        request,
        "mail/list.html",
        {
            "items": [list_item(row) for row in result.rows],
            "total": result.total,
            "has_any": result.has_any,
            "only_tracked": only_tracked,
            "q": q,
            "filtered": only_tracked or bool(q),
            "toggle_tracked_url": url_with("/mail", tracked=None if only_tracked else "1", q=q),
            "pager": pager("/mail", number, result.per_page, result.total, **filters),
            **_links(),
        },
    )


# ---------------------------------------------------------------------------
# The composer (S5, S6, S3, S10).


@dataclass(frozen=True, slots=True)
class ComposeForm:
    """What the composer holds, kept as typed so an error never loses the user's input."""

    to: str = ""
    cc: str = ""
    bcc: str = ""
    subject: str = ""
    format: str = "html"
    body: str = ""
    track_opens: bool = True
    track_links: bool = True

    @classmethod
    def defaults(cls, user: User, to: str = "") -> ComposeForm:
        """A fresh form: the last email's toggles become the defaults (S6)."""
        return cls(
            to=to[:MAX_PREFILL],
            track_opens=user.last_track_opens,
            track_links=user.last_track_links,
        )

    @classmethod
    def from_form(cls, form: FormData) -> ComposeForm:
        def text(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        return cls(
            to=text("to"),
            cc=text("cc"),
            bcc=text("bcc"),
            subject=text("subject"),
            format="text" if text("format") == "text" else "html",
            body=text("body"),
            track_opens=text("track_opens") == "1",
            track_links=text("track_links") == "1",
        )

    def send_input(self, user: User) -> SendInput:
        """The request for the sender; a toggle the user never saw keeps their last choice."""
        html: str | None = None
        text: str | None = self.body
        if self.format == "html":
            html = self.body
            text = html_to_text(self.body) if self.body.strip() else None
        return SendInput(
            to=[self.to],
            cc=[self.cc],
            bcc=[self.bcc],
            subject=self.subject,
            html=html,
            text=text,
            track_opens=self.track_opens if user.open_tracking else None,
            track_links=self.track_links if user.link_tracking else None,
        )


@dataclass(frozen=True, slots=True)
class Preview:
    """What will and will not be tracked, said before sending (DESIGN rule 5)."""

    opens: bool
    links: bool
    link_count: int
    open_reasons: tuple[str, ...]
    link_reasons: tuple[str, ...]
    in_settings: bool


def tracking_preview(user: User, form: ComposeForm, public_url: str) -> Preview | None:
    """The policy's answer for the form as it stands, through the sender's own functions.

    Recipients may still be missing or wrong while typing; the body alone decides
    tracking, so an address problem falls back to a placeholder recipient.
    """
    request = form.send_input(user)
    draft: Draft | None = None
    for attempt in (request, replace(request, to=[user.email], cc=[], bcc=[], subject="")):
        try:
            draft = draft_from(user, attempt)
            break
        except InvalidRequest:
            continue
    if draft is None:
        return None
    decision = tracking_for(user, draft, request, public_url)
    return Preview(
        opens=decision.track_opens,
        links=decision.track_links,
        link_count=len(trackable_links(draft, public_url)),
        open_reasons=tuple(REASON_TEXT[r] for r in decision.reasons if r in OPEN_REASONS),
        link_reasons=tuple(REASON_TEXT[r] for r in decision.reasons if r in LINK_REASONS),
        in_settings=any(r in SWITCH_REASONS for r in decision.reasons),
    )


FORM_FIELDS = {"to": "to", "cc": "cc", "bcc": "bcc", "subject": "subject"}


def field_error(exc: InvalidRequest, l10n: Localizer) -> tuple[str, str]:
    """The form field an error belongs to, and the error in the user's language."""
    field = FORM_FIELDS.get(exc.field, "body")
    message = REQUEST_PROBLEMS.get(exc.code, N_("Please check this field."))
    return field, l10n.gettext(message, **exc.params)


async def compose_page(
    request: Request,
    current: SignedIn,
    form: ComposeForm,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    runtime = request.app.state.runtime
    preview = tracking_preview(current.user, form, runtime.settings.public_url.rstrip("/"))
    return await render(
        request,
        "mail/compose.html",
        {"form": form, "errors": errors or {}, "preview": preview},
        status_code=status_code,
    )


@router.get("/mail/new")
async def compose(request: Request, current: Current, to: str = "") -> HTMLResponse:
    """A blank composer; `?to=` prefills the recipient (the contact page's "Write to")."""
    return await compose_page(request, current, ComposeForm.defaults(current.user, to))


@router.post("/mail/new")
async def send(request: Request, current: Checked) -> Response:
    """Send, or show the form again with the user's input and the error by its field."""
    form = ComposeForm.from_form(await request.form())
    runtime = request.app.state.runtime
    try:
        message = await runtime.sender.send(current.user.id, form.send_input(current.user))
    except InvalidRequest as exc:
        field, problem = field_error(exc, localizer_for(request, current))
        return await compose_page(request, current, form, {field: problem}, status_code=422)
    return RedirectResponse(f"/mail/{message.id}?sent=1", status_code=303)


@router.post("/mail/tracking-preview")
async def preview(request: Request, current: Checked) -> HTMLResponse:
    """The composer's live "what will not be tracked" note (compose.js posts the form)."""
    form = ComposeForm.from_form(await request.form())
    runtime = request.app.state.runtime
    return await render(
        request,
        "mail/_preview.html",
        {"preview": tracking_preview(current.user, form, runtime.settings.public_url.rstrip("/"))},
    )


# ---------------------------------------------------------------------------
# The message page (B1, S11, B3).


@dataclass(frozen=True, slots=True)
class RecipientItem:
    recipient: Recipient
    opens: TrackIcon
    clicks: TrackIcon
    clicked: list[tuple[str, int]]


@dataclass(frozen=True, slots=True)
class TimelineItem:
    entry: TimelineEntry
    label: str
    reason: str


def timeline_item(entry: TimelineEntry) -> TimelineItem:
    label, reason = VERDICTS.get(entry.verdict, OTHER_VERDICT)
    if entry.counted:
        reason = ""
    elif not reason:
        reason = OTHER_VERDICT[1]
    return TimelineItem(entry, label, reason)


def _as_activity(entries: Iterable[TimelineEntry], message_id: int) -> list[Activity]:
    """The counted timeline entries, as tooltip lines for the whole message."""
    return [
        Activity(e.kind, e.occurred_at, message_id, e.recipient_id, e.address, e.name, e.url)
        for e in entries
        if e.counted
    ]


@router.get("/mail/{message_id:int}")
async def message_page(
    request: Request, current: Current, message_id: int, sent: str = ""
) -> HTMLResponse:
    """One message: per-recipient delivery and tracking, the timeline, links, the body."""
    if message_id > MAX_ID:
        raise HTTPException(404)
    async with _database(request) as db:
        view = await queries.message_view(db, current.user.id, message_id)
    if view is None:
        raise HTTPException(404)
    message = view.message
    opens, clicks = track_icons(
        f"m{message.id}", message, message, _as_activity(view.timeline, message.id)
    )
    recipients = []
    for recipient in message.recipients:
        mine = [a for a in view.activity if a.recipient_id == recipient.id]
        r_opens, r_clicks = track_icons(f"r{recipient.id}", recipient, message, mine)
        recipients.append(
            RecipientItem(recipient, r_opens, r_clicks, view.clicked.get(recipient.id, []))
        )
    return await render(
        request,
        "mail/message.html",
        {
            "message": message,
            "opens": opens,
            "clicks": clicks,
            "recipients": recipients,
            "timeline": [timeline_item(entry) for entry in view.timeline],
            "event_total": view.event_total,
            "reasons": [REASON_TEXT[r] for r in _reasons(message.untracked_reasons)],
            "just_sent": sent == "1",
            **_links(),
        },
    )


# ---------------------------------------------------------------------------
# Contacts (S8: the same icons in the contact view).


@router.get("/contacts")
async def contacts(
    request: Request, current: Current, page: str = "1", q: str = ""
) -> HTMLResponse:
    """Everyone the user has mailed, with totals; searchable by name or address."""
    q = q.strip()[: queries.MAX_SEARCH]
    number = page_number(page)
    async with _database(request) as db:
        result = await queries.contact_page(db, current.user.id, page=number, q=q)
    return await render(
        request,
        "contacts/list.html",
        {
            "rows": result.rows,
            "total": result.total,
            "has_any": result.has_any,
            "q": q,
            "pager": pager("/contacts", number, result.per_page, result.total, q=q),
            **_links(),
        },
    )


@dataclass(frozen=True, slots=True)
class ContactItem:
    message: Message
    recipient: Recipient
    opens: TrackIcon
    clicks: TrackIcon


@router.get("/contacts/{address:path}")
async def contact(
    request: Request, current: Current, address: str, page: str = "1"
) -> HTMLResponse:
    """One contact's mail, each copy with its own icons; 404 for an address never mailed."""
    number = page_number(page)
    if len(address) > MAX_ADDRESS:
        raise HTTPException(404)
    async with _database(request) as db:
        view = await queries.contact_view(db, current.user.id, address, page=number)
    if view is None:
        raise HTTPException(404)
    items = []
    for mail in view.mails:
        mine = [a for a in view.activity if a.recipient_id == mail.recipient.id]
        opens, clicks = track_icons(f"r{mail.recipient.id}", mail.recipient, mail.message, mine)
        items.append(ContactItem(mail.message, mail.recipient, opens, clicks))
    return await render(
        request,
        "contacts/detail.html",
        {
            "contact": view.contact,
            "items": items,
            "pager": pager(
                contact_url(view.contact.address), number, view.per_page, view.contact.emails
            ),
            **_links(),
        },
    )
