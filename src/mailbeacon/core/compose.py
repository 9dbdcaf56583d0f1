"""A send request, checked: what a user asked to send, made safe to send."""

from __future__ import annotations

from dataclasses import dataclass, field

from mailbeacon.core.addresses import (
    ADDRESS_PROBLEMS,
    InvalidAddress,
    Mailbox,
)
from mailbeacon.core.limits import MAX_BODY_CHARS, MAX_LINKS, MAX_RECIPIENTS, MAX_SUBJECT
from mailbeacon.core.linkify import linkify_html
from mailbeacon.core.rewrite import find_html_links, find_link_problems, find_text_links
from mailbeacon.core.text import N_, has_c0_controls, has_lone_surrogates, one_line
from mailbeacon.core.urls import LinkProblem

REQUEST_PROBLEMS: dict[str, str] = {
    "no_recipients": N_("Add at least one recipient."),
    "too_many_recipients": N_("At most %(num)s recipients per email."),
    "subject_not_one_line": N_(
        "The subject must be one line, without line breaks or control characters."
    ),
    "too_long": N_("At most %(num)s characters."),
    "too_many_links": N_("At most %(num)s different links per email."),
    "nul_character": N_("The message contains a NUL character, which email cannot carry."),
    "not_unicode": N_(
        "The text contains a broken character (a lone surrogate) that email cannot carry."
    ),
    "too_many_attachments": N_("At most %(num)s attachments per email."),
    "attachments_too_big": N_(
        "The attachments come to %(size)s; at most %(limit)s per email. "
        "Share big files with a link instead."
    ),
    "send_at_invalid": N_("Please give a date and time for sending later."),
    **ADDRESS_PROBLEMS,
}


class InvalidRequest(ValueError):
    """A send request that cannot be sent as given.

    `field` names the input, `code` (a key of REQUEST_PROBLEMS) and `params`
    say what is wrong in a way any language can render; `problem` is English.
    """

    def __init__(self, field: str, code: str, **params: object) -> None:
        self.field = field
        self.code = code
        self.params = params
        self.problem = REQUEST_PROBLEMS[code] % params if params else REQUEST_PROBLEMS[code]
        super().__init__(f"{field}: {self.problem}")

    @classmethod
    def from_address(cls, field: str, error: InvalidAddress) -> InvalidRequest:
        """An address problem, attributed to the field it was typed in."""
        if error.code == "too_many_addresses":
            return cls(field, "too_many_recipients", num=MAX_RECIPIENTS)
        return cls(field, error.code, value=f"“{error.value}”")


@dataclass(frozen=True, slots=True)
class Draft:
    """A validated email, before tracking: one body, many recipients.

    `found_links` are the trackable links of both bodies (found once, by make_draft).
    """

    sender: Mailbox
    to: tuple[Mailbox, ...]
    cc: tuple[Mailbox, ...]
    bcc: tuple[Mailbox, ...]
    subject: str
    html: str | None
    text: str | None
    found_links: tuple[str, ...] | None = field(default=None, compare=False)

    @property
    def recipients(self) -> tuple[tuple[str, Mailbox], ...]:
        """Every recipient with the field it was given in, each address once."""
        seen: set[str] = set()
        result: list[tuple[str, Mailbox]] = []
        for field_name, boxes in (("to", self.to), ("cc", self.cc), ("bcc", self.bcc)):
            for box in boxes:
                key = box.address.lower()
                if key not in seen:
                    seen.add(key)
                    result.append((field_name, box))
        return tuple(result)

    def links(self) -> list[str]:
        """Every trackable link in either body, each once, in order of appearance.

        Each is the URL a browser would open (see :mod:`mailbeacon.core.urls`).
        """
        if self.found_links is not None:
            return list(self.found_links)
        return _links(self.html, self.text)

    def link_problems(self) -> list[tuple[str, LinkProblem]]:
        """Web links left untracked on purpose, each with its reason (to tell the user)."""
        return find_link_problems(self.html, self.text)


def _links(html: str | None, text: str | None) -> list[str]:
    found = find_html_links(html or "") + find_text_links(text or "")
    return list(dict.fromkeys(found))


def make_draft(
    sender: Mailbox,
    *,
    to: list[Mailbox],
    cc: list[Mailbox],
    bcc: list[Mailbox],
    subject: str,
    html: str | None,
    text: str | None,
) -> Draft:
    """Check a draft, raising InvalidRequest naming the first wrong field.

    Cheap checks (counts, sizes, characters) come first; the bodies are parsed once, last,
    to count their links against MAX_LINKS. Bare URLs in the HTML's text become links
    (:func:`mailbeacon.core.linkify.linkify_html`): the draft's HTML is the one to store.
    The subject is made one line: line and paragraph separators (U+2028, U+2029, U+0085)
    and tabs become spaces; ASCII control characters (CR, LF, NUL...) are refused,
    since they mean the input was built wrong.
    """
    if not to and not cc and not bcc:
        raise InvalidRequest("to", "no_recipients")
    count = len(to) + len(cc) + len(bcc)
    if count > MAX_RECIPIENTS:
        raise InvalidRequest("to", "too_many_recipients", num=MAX_RECIPIENTS)
    if len(subject) > MAX_SUBJECT:
        raise InvalidRequest("subject", "too_long", num=MAX_SUBJECT)
    if has_c0_controls(subject):
        raise InvalidRequest("subject", "subject_not_one_line")
    if has_lone_surrogates(subject):
        raise InvalidRequest("subject", "not_unicode")
    for name, body in (("html", html), ("text", text)):
        if body is None:
            continue
        if len(body) > MAX_BODY_CHARS:
            raise InvalidRequest(name, "too_long", num=MAX_BODY_CHARS)
        if "\x00" in body:
            raise InvalidRequest(name, "nul_character")
        if has_lone_surrogates(body):
            raise InvalidRequest(name, "not_unicode")
    if html is not None:
        html = linkify_html(html)  # typed URLs become links, so they are tracked too
    links = _links(html, text)
    if len(links) > MAX_LINKS:
        raise InvalidRequest("html" if html else "text", "too_many_links", num=MAX_LINKS)
    return Draft(
        sender,
        tuple(to),
        tuple(cc),
        tuple(bcc),
        one_line(subject).strip(),
        html,
        text,
        tuple(links),
    )


__all__ = [
    "MAX_BODY_CHARS",
    "MAX_LINKS",
    "MAX_RECIPIENTS",
    "MAX_SUBJECT",
    "Draft",
    "InvalidAddress",
    "InvalidRequest",
    "make_draft",
]
