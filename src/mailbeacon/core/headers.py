"""Header values we encode ourselves, and the check that proves them safe on the wire.

Why not let the ``email`` package do it: given a string, its modern policies *decode*
RFC 2047 encoded words in it and then re-fold the result. A subject typed as
``=?utf-8?q?Hi=0D=0AReply-To:_evil@evil.example?=`` became a real CR LF and a real
Reply-To header on Python 3.11.7. So every value here is built from plain text into
pure ASCII by our own code (encoded words for anything that is not plain, short ASCII)
and handed to the email package as a finished, folded header it stores and writes back
verbatim. Then :func:`check_header` proves, on the exact bytes, that a header is one
header: its name, printable ASCII, continuation lines only as CRLF plus whitespace plus
text, no CR, LF or NUL anywhere else, no line over 998 characters. Whatever the Python
version, a value that would fail is never sent.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from email.policy import Policy

from mailbeacon.core.addresses import is_addr_spec
from mailbeacon.core.text import one_line

__all__ = [
    "PreparedHeader",
    "UnsafeHeader",
    "address_list",
    "check_header",
    "message_id",
    "plain",
    "unstructured",
]

MAX_LINE = 78  # RFC 5322's "SHOULD"; 998 is the hard limit checked on the bytes
HARD_LINE_LIMIT = 998
_WORD_PREFIX = "=?utf-8?b?"
_WORD_SUFFIX = "?="
# 56 base64 characters: a 68-character encoded word (RFC 2047 allows 75), so even the first
# line ("Subject: " + word) stays within 78.
_WORD_BYTES = 42
_PLAIN_WORD = re.compile(r"[\x21-\x7e]{1,70}")
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")
_QUOTABLE = re.compile(r"[\x20-\x7e]{1,60}")
_MSG_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]{1,240}@[\x21-\x3b\x3d\x3f-\x7e]{1,240}>")
_HEADER_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+")
_NON_WSP = re.compile(rb"[^ \t]")


class UnsafeHeader(ValueError):
    """A header that could be read as more than one header; it is never emitted."""


class PreparedHeader(str):
    """A header value we encoded and folded ourselves; the email package writes it as is.

    ``email.policy.EmailPolicy`` stores a value that has a ``name`` attribute unchanged
    and calls its ``fold()`` to write it, instead of parsing (and decoding) a string. The
    ``str`` value is the unfolded header value.
    """

    name: str
    lines: tuple[str, ...]

    def __new__(cls, name: str, lines: Sequence[str]) -> PreparedHeader:
        value = super().__new__(cls, "".join(lines))
        value.name = name
        value.lines = tuple(lines)
        return value

    def __getnewargs__(self) -> tuple[str, tuple[str, ...]]:  # type: ignore[override]
        """Copies and pickles rebuild the header from its name and lines."""
        return (self.name, self.lines)

    def fold(self, *, policy: Policy) -> str:
        """The header as written: name, value, continuation lines, line ending."""
        linesep = policy.linesep
        first = f"{self.name}: {self.lines[0]}" if self.lines and self.lines[0] else self.name + ":"
        return linesep.join([first, *self.lines[1:]]) + linesep


def _encoded_words(text: str) -> list[str]:
    """``text`` as RFC 2047 "B" encoded words, never splitting a character's bytes."""
    words: list[str] = []
    chunk = bytearray()
    for char in text:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _WORD_BYTES:
            words.append(_word(bytes(chunk)))
            chunk.clear()
        chunk += encoded
    if chunk:
        words.append(_word(bytes(chunk)))
    return words


def _word(raw: bytes) -> str:
    return _WORD_PREFIX + base64.b64encode(raw).decode("ascii") + _WORD_SUFFIX


def _fold(name: str, tokens: Iterable[str]) -> list[str]:
    """Join tokens with single spaces, breaking lines only at those spaces.

    Folding turns a separating space into CRLF + space, so unfolding gives back exactly the
    same value, and every continuation line starts with a space followed by a token.
    """
    lines: list[str] = []
    current = ""
    used = len(name) + 2
    for token in tokens:
        if not current:
            current = token
        elif used + 1 + len(token) > MAX_LINE:
            lines.append(current)
            current = " " + token
            used = 0
        else:
            current += " " + token
        used += len(token) + 1
    lines.append(current)
    return lines


def unstructured(name: str, text: str) -> PreparedHeader:
    """An unstructured header (Subject) from text: plain ASCII words as they are, else
    encoded words, so decoding gives back exactly ``one_line(text)``."""
    text = one_line(text)
    words = text.split(" ")
    plain = "=?" not in text and all(_PLAIN_WORD.fullmatch(word) for word in words)
    tokens = words if plain else _encoded_words(text)
    return PreparedHeader(name, _fold(name, tokens) if text else [""])


def _phrase(display_name: str) -> list[str]:
    """A display name as header tokens: atoms, one quoted string, or encoded words."""
    name = " ".join(one_line(display_name).split())
    if "=?" in name:
        return _encoded_words(name)
    words = name.split(" ")
    if all(_ATOM.fullmatch(word) for word in words):
        return words
    if _QUOTABLE.fullmatch(name):
        return ['"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"']
    return _encoded_words(name)


def address_list(name: str, mailboxes: Sequence[tuple[str, str]]) -> PreparedHeader:
    """From, To or Cc from (display name, address) pairs; addresses must be addr-specs."""
    tokens: list[str] = []
    for index, (display_name, address) in enumerate(mailboxes):
        if not is_addr_spec(address):
            raise UnsafeHeader(f"{name}: not a plain address")
        comma = "," if index < len(mailboxes) - 1 else ""
        if display_name.strip():
            tokens.extend(_phrase(display_name))
            tokens.append(f"<{address}>{comma}")
        else:
            tokens.append(address + comma)
    return PreparedHeader(name, _fold(name, tokens))


def plain(name: str, value: str) -> PreparedHeader:
    """A value we generated (a date, ``undisclosed-recipients:;``): checked, not encoded."""
    if not re.fullmatch(r"[\x20-\x7e]{1,900}", value):
        raise UnsafeHeader(f"{name}: unexpected characters")
    return PreparedHeader(name, [value])


def message_id(value: str) -> PreparedHeader:
    """A Message-ID: one ``<left@right>`` of printable ASCII, nothing else."""
    if not _MSG_ID.fullmatch(value):
        raise UnsafeHeader("Message-ID: not a single <id@domain>")
    return PreparedHeader("Message-ID", [value])


def check_header(name: str, folded: bytes) -> None:
    """Prove that ``folded`` (one header as written, line ending included) is one header.

    Raises UnsafeHeader unless: it starts with ``name:``, ends with CRLF, every other CRLF
    is followed by a space or tab and then by something other than whitespace, there is no
    other CR, LF or NUL, every byte is ASCII, and no line exceeds 998 characters.
    """
    if not folded.endswith(b"\r\n") or not folded.isascii():
        raise UnsafeHeader(f"{name}: bad line ending or non-ASCII byte")
    lines = folded[:-2].split(b"\r\n")
    head, _, _ = lines[0].partition(b":")
    if head.decode("ascii").lower() != name.lower() or not _HEADER_NAME.fullmatch(head):
        raise UnsafeHeader(f"{name}: the header name changed")
    for number, line in enumerate(lines):
        if b"\r" in line or b"\n" in line or b"\x00" in line:
            raise UnsafeHeader(f"{name}: CR, LF or NUL inside a header")
        if len(line) > HARD_LINE_LIMIT:
            raise UnsafeHeader(f"{name}: a line is longer than {HARD_LINE_LIMIT}")
        if number and (line[:1] not in (b" ", b"\t") or not _NON_WSP.search(line)):
            raise UnsafeHeader(f"{name}: a line that would start a new header or the body")
