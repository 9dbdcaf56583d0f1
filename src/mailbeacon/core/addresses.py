"""Email addresses from people: parsed strictly, in bounded time, never trusted into a header.

The parser is our own, a single left-to-right pass with counters, because the stdlib's
``getaddresses`` recurses on nested comments (``"(" * 500`` raised RecursionError) and is
slow on long input. Sizes and counts are checked before anything is parsed, so a 3 MB
field costs a length check. Display names are kept as text and never decoded: an RFC 2047
encoded word typed into a name is just characters, and :mod:`mailbeacon.core.mime` encodes
names itself when building headers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailbeacon.core.limits import (
    MAX_ADDRESS_FIELD_CHARS,
    MAX_ADDRESS_LENGTH,
    MAX_MAILBOX_CHARS,
    MAX_RECIPIENTS,
)
from mailbeacon.core.text import N_, one_line

__all__ = [
    "ADDRESS_PROBLEMS",
    "MAX_ADDRESS_LENGTH",
    "InvalidAddress",
    "Mailbox",
    "has_control_characters",
    "is_addr_spec",
    "mailbox_problems",
    "parse_mailbox",
    "parse_mailboxes",
]

# Practical addr-spec: what real mail servers accept, not every RFC 5322 corner.
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
_ADDR_SPEC = re.compile(rf"{_LOCAL}@(?:{_DOMAIN}|localhost)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SHOWN_CHARS = 60
# Characters that make a display name need quotes when written as "Name <addr>".
_NEEDS_QUOTES = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~\- \u0080-\U0010ffff]")


ADDRESS_PROBLEMS: dict[str, str] = {
    "control_character": N_("%(value)s contains a line break or another control character."),
    "not_one_address": N_("%(value)s is not a single email address."),
    "invalid_address": N_("%(value)s is not a valid email address."),
    "address_too_long": N_("%(value)s is too long for an email address."),
    "too_many_addresses": N_("%(value)s holds more addresses than one email may have."),
}


def _shown(value: str) -> str:
    """A value as quoted back in an error: never the whole of a huge input."""
    return value if len(value) <= _SHOWN_CHARS else value[:_SHOWN_CHARS] + "…"


class InvalidAddress(ValueError):
    """An address (or a list of them) that cannot safely go into a header.

    `code` is stable (a key of ADDRESS_PROBLEMS), so pages can say it in the
    user's language; the message is the English text. `value` is shortened.
    """

    def __init__(self, code: str, value: str) -> None:
        self.code = code
        self.value = _shown(value)
        super().__init__(ADDRESS_PROBLEMS[code] % {"value": f"“{self.value}”"})


@dataclass(frozen=True, slots=True)
class Mailbox:
    """A display name and an address.

    The name is made one line on the way in (line and paragraph separators, controls and
    tabs become spaces, runs of spaces one), so a name saved anywhere can always be sent.
    `str()` is the human form, ``Name <addr>``, which :func:`parse_mailbox` reads back.
    """

    address: str
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", _clean_name(self.name))

    def __str__(self) -> str:
        if not self.name:
            return self.address
        name = self.name
        if _NEEDS_QUOTES.search(name):
            name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{name} <{self.address}>"


def _clean_name(name: str) -> str:
    return " ".join(one_line(name).split()) if name else ""


def has_control_characters(value: str) -> bool:
    """CR, LF and friends: the raw material of header injection."""
    return bool(_CONTROL.search(value))


def is_addr_spec(address: str) -> bool:
    """Whether ``address`` is a plain ``local@domain`` we accept (ASCII, bounded)."""
    return len(address) <= MAX_ADDRESS_LENGTH and _ADDR_SPEC.fullmatch(address) is not None


def parse_mailbox(value: str) -> Mailbox:
    """One address, 'Name <addr>' or bare, or InvalidAddress saying what is wrong."""
    if len(value) > MAX_MAILBOX_CHARS:
        raise InvalidAddress("address_too_long", value)
    if has_control_characters(value):
        raise InvalidAddress("control_character", value)
    name, address = _read_mailbox(value)
    address = _ascii_domain(address)
    if not is_addr_spec(address):
        raise InvalidAddress("invalid_address", value)
    return Mailbox(address=address, name=name)


def _ascii_domain(address: str) -> str:
    """An internationalised domain (``anna@exämple.com``) in its ASCII form (IDNA).

    The address is kept and sent as ``anna@xn--exmple-cua.com``: every mail server
    takes that, so SMTPUTF8 stays for what needs it (a non-ASCII local part, which
    is still refused). A domain IDNA cannot encode is left as typed and fails the
    addr-spec check like any other bad domain.
    """
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii() or len(address) > MAX_ADDRESS_LENGTH:
        return address
    try:
        return f"{local}@{domain.encode('idna').decode('ascii')}"
    except UnicodeError:
        return address


def mailbox_problems(values: list[str] | str) -> list[InvalidAddress]:
    """Every problem of every address in a field, so a form can show them all at once.

    The field-wide limits (size, count) come first, as in :func:`parse_mailboxes`; if
    one is exceeded it is the only problem reported.
    """
    items = [values] if isinstance(values, str) else list(values)
    try:
        parse_mailboxes(items)
    except InvalidAddress as exc:
        first = exc
    else:
        return []
    if first.code == "too_many_addresses" or sum(map(len, items)) > MAX_ADDRESS_FIELD_CHARS:
        return [first]
    problems: list[InvalidAddress] = []
    for item in items:
        for part in _split_addresses(item):
            try:
                parse_mailbox(part)
            except InvalidAddress as exc:
                problems.append(exc)
    return problems or [first]


def parse_mailboxes(values: list[str] | str, *, limit: int = MAX_RECIPIENTS) -> list[Mailbox]:
    """A list of addresses; a single string may hold several separated by commas.

    Sizes and counts are checked before any address is parsed: the whole field against
    MAX_ADDRESS_FIELD_CHARS, the number of addresses against ``limit``.
    """
    items = [values] if isinstance(values, str) else list(values)
    if len(items) > limit:
        raise InvalidAddress("too_many_addresses", ", ".join(items[:3]))
    if sum(len(item) for item in items) > MAX_ADDRESS_FIELD_CHARS:
        raise InvalidAddress("address_too_long", items[0] if items else "")
    parts: list[str] = []
    for item in items:
        if has_control_characters(item):
            raise InvalidAddress("control_character", item)
        parts.extend(_split_addresses(item))
        if len(parts) > limit:
            raise InvalidAddress("too_many_addresses", item)
    return [parse_mailbox(part) for part in parts]


def _split_addresses(value: str) -> list[str]:
    """Split on commas and semicolons outside quotes, comments and angle brackets."""
    parts: list[str] = []
    start = 0
    quoted = escaped = False
    comment = angle = 0
    for i, char in enumerate(value):
        if escaped:
            escaped = False
        elif char == "\\" and (quoted or comment):
            escaped = True
        elif quoted:
            quoted = char != '"'
        elif char == '"' and not comment:
            quoted = True
        elif char == "(":
            comment += 1
        elif char == ")" and comment:
            comment -= 1
        elif comment:
            continue
        elif char == "<":
            angle += 1
        elif char == ">" and angle:
            angle -= 1
        elif char in ",;" and not angle:
            parts.append(value[start:i])
            start = i + 1
    parts.append(value[start:])
    return [p.strip() for p in parts if p.strip()]


def _read_mailbox(value: str) -> tuple[str, str]:
    """(display name, address) of ``Name <addr>``, ``"Quoted" <addr>``, ``addr (Name)``.

    One pass, no recursion: quoted strings (with backslash escapes) and comments (nested,
    counted) are read as text; anything that is not one mailbox raises InvalidAddress.
    """
    name: list[str] = []
    comment_text: list[str] = []
    address: str | None = None
    after_address: list[str] = []
    i = 0
    n = len(value)
    while i < n:
        char = value[i]
        if char == '"':
            i, text = _read_quoted(value, i)
            (after_address if address is not None else name).append(text)
        elif char == "(":
            i, text = _read_comment(value, i)
            comment_text.append(text)
        elif char == "<":
            close = value.find(">", i + 1)
            if close < 0 or address is not None:
                raise InvalidAddress("invalid_address", value)
            address = value[i + 1 : close].strip()
            i = close + 1
        elif char in ",;<>)":
            raise InvalidAddress("not_one_address", value)
        else:
            (after_address if address is not None else name).append(char)
            i += 1
    if address is not None:
        if "".join(after_address).strip():
            raise InvalidAddress("not_one_address", value)
        return " ".join("".join(name).split()), address
    bare = "".join(name).strip()
    return " ".join(" ".join(comment_text).split()), bare


def _read_quoted(value: str, start: int) -> tuple[int, str]:
    """Read ``"..."`` from ``start``; returns (index after it, its unescaped content)."""
    out: list[str] = []
    i = start + 1
    while i < len(value):
        char = value[i]
        if char == "\\" and i + 1 < len(value):
            out.append(value[i + 1])
            i += 2
        elif char == '"':
            return i + 1, "".join(out)
        else:
            out.append(char)
            i += 1
    raise InvalidAddress("invalid_address", value)


def _read_comment(value: str, start: int) -> tuple[int, str]:
    """Read a (possibly nested) ``(...)`` comment by counting; returns (end, its text)."""
    out: list[str] = []
    depth = 0
    i = start
    while i < len(value):
        char = value[i]
        if char == "\\" and i + 1 < len(value):
            out.append(value[i + 1])
            i += 2
            continue
        if char == "(":
            depth += 1
            if depth > 1:
                out.append(char)
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i + 1, "".join(out)
            out.append(char)
        else:
            out.append(char)
        i += 1
    raise InvalidAddress("invalid_address", value)
