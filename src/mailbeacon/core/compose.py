"""A send request, checked: what a user asked to send, made safe to send."""

from __future__ import annotations

from dataclasses import dataclass

from mailbeacon.core.addresses import InvalidAddress, Mailbox, has_control_characters
from mailbeacon.core.rewrite import find_html_links, find_text_links

MAX_RECIPIENTS = 100
MAX_SUBJECT = 998
MAX_BODY_CHARS = 5_000_000


class InvalidRequest(ValueError):
    """A send request that cannot be sent as given; the message says which field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


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
        raise InvalidRequest("to", "at least one recipient is needed")
    count = len(to) + len(cc) + len(bcc)
    if count > MAX_RECIPIENTS:
        raise InvalidRequest("to", f"at most {MAX_RECIPIENTS} recipients per email")
    if has_control_characters(subject.replace("\t", " ")):
        raise InvalidRequest("subject", "must be one line without control characters")
    if len(subject) > MAX_SUBJECT:
        raise InvalidRequest("subject", f"at most {MAX_SUBJECT} characters")
    for name, body in (("html", html), ("text", text)):
        if body is not None and len(body) > MAX_BODY_CHARS:
            raise InvalidRequest(name, f"at most {MAX_BODY_CHARS} characters")
        if body is not None and "\x00" in body:
            raise InvalidRequest(name, "contains a NUL character")
    return Draft(sender, tuple(to), tuple(cc), tuple(bcc), subject.strip(), html, text)


__all__ = ["Draft", "InvalidAddress", "InvalidRequest", "make_draft"]
