"""A send request, checked: what a user asked to send, made safe to send."""

from __future__ import annotations

from dataclasses import dataclass

from mailbeacon.core.addresses import (
    ADDRESS_PROBLEMS,
    InvalidAddress,
    Mailbox,
    has_control_characters,
)
from mailbeacon.core.rewrite import find_html_links, find_text_links
from mailbeacon.core.text import N_

MAX_RECIPIENTS = 100
MAX_SUBJECT = 998
MAX_BODY_CHARS = 5_000_000
# Distinct trackable links per email (HTML and text part together).
MAX_LINKS = 1000


REQUEST_PROBLEMS: dict[str, str] = {
    "no_recipients": N_("Add at least one recipient."),
    "too_many_recipients": N_("At most %(num)s recipients per email."),
    "subject_not_one_line": N_(
        "The subject must be one line, without line breaks or control characters."
    ),
    "too_long": N_("At most %(num)s characters."),
    "too_many_links": N_("At most %(num)s different links per email."),
    "nul_character": N_("The message contains a NUL character, which email cannot carry."),
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
        return cls(field, error.code, value=f"“{error.value}”")


@dataclass(frozen=True, slots=True)
class Draft:
    """A validated email, before tracking: one body, many recipients."""

    sender: Mailbox
    to: tuple[Mailbox, ...]
    cc: tuple[Mailbox, ...]
    bcc: tuple[Mailbox, ...]
    subject: str
    html: str | None
    text: str | None

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
        """Every trackable link in either body, each once, in order of appearance."""
        found = find_html_links(self.html or "") + find_text_links(self.text or "")
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
    """Check a draft, raising InvalidRequest naming the first wrong field."""
    if not to and not cc and not bcc:
        raise InvalidRequest("to", "no_recipients")
    count = len(to) + len(cc) + len(bcc)
    if count > MAX_RECIPIENTS:
        raise InvalidRequest("to", "too_many_recipients", num=MAX_RECIPIENTS)
    if has_control_characters(subject.replace("\t", " ")):
        raise InvalidRequest("subject", "subject_not_one_line")
    if len(subject) > MAX_SUBJECT:
        raise InvalidRequest("subject", "too_long", num=MAX_SUBJECT)
    for name, body in (("html", html), ("text", text)):
        if body is not None and len(body) > MAX_BODY_CHARS:
            raise InvalidRequest(name, "too_long", num=MAX_BODY_CHARS)
        if body is not None and "\x00" in body:
            raise InvalidRequest(name, "nul_character")
    return Draft(sender, tuple(to), tuple(cc), tuple(bcc), subject.strip(), html, text)


__all__ = ["Draft", "InvalidAddress", "InvalidRequest", "make_draft"]
