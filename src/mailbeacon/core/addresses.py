"""Email addresses from people: parsed strictly, never trusted into a header raw."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import getaddresses

from mailbeacon.core.text import N_

# Practical addr-spec: what real mail servers accept, not every RFC 5322 corner.
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
_ADDR_SPEC = re.compile(rf"^{_LOCAL}@(?:{_DOMAIN}|localhost)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_ADDRESS_LENGTH = 320


ADDRESS_PROBLEMS: dict[str, str] = {
    "control_character": N_("%(value)s contains a line break or another control character."),
    "not_one_address": N_("%(value)s is not a single email address."),
    "invalid_address": N_("%(value)s is not a valid email address."),
}


class InvalidAddress(ValueError):
    """An address (or a list of them) that cannot safely go into a header.

    `code` is stable (a key of ADDRESS_PROBLEMS), so pages can say it in the
    user's language; the message is the English text.
    """

    def __init__(self, code: str, value: str) -> None:
        self.code = code
        self.value = value
        super().__init__(ADDRESS_PROBLEMS[code] % {"value": f"“{value}”"})


@dataclass(frozen=True, slots=True)
class Mailbox:
    """A display name and an address; `str()` is header-safe."""

    address: str
    name: str = ""

    def __str__(self) -> str:
        return str(Address(display_name=self.name, addr_spec=self.address))


def has_control_characters(value: str) -> bool:
    """CR, LF and friends: the raw material of header injection."""
    return bool(_CONTROL.search(value))


def parse_mailbox(value: str) -> Mailbox:
    """One address, 'Name <addr>' or bare, or InvalidAddress saying what is wrong."""
    if has_control_characters(value):
        raise InvalidAddress("control_character", value)
    pairs = getaddresses([value])
    if len(pairs) != 1:
        raise InvalidAddress("not_one_address", value)
    name, address = pairs[0]
    address = address.strip()
    if not address or len(address) > MAX_ADDRESS_LENGTH or not _ADDR_SPEC.match(address):
        raise InvalidAddress("invalid_address", value)
    return Mailbox(address=address, name=name.strip())


def parse_mailboxes(values: list[str] | str) -> list[Mailbox]:
    """A list of addresses; a single string may hold several separated by commas."""
    items = [values] if isinstance(values, str) else list(values)
    result: list[Mailbox] = []
    for item in items:
        if has_control_characters(item):
            raise InvalidAddress("control_character", item)
        for part in _split_addresses(item):
            result.append(parse_mailbox(part))
    return result


def _split_addresses(value: str) -> list[str]:
    """Split on commas and semicolons outside quotes and angle brackets."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    angle = 0
    for char in value:
        if char == '"':
            quoted = not quoted
        elif char == "<" and not quoted:
            angle += 1
        elif char == ">" and not quoted:
            angle = max(0, angle - 1)
        if char in ",;" and not quoted and not angle:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]
