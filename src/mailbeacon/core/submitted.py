"""A message a mail client submitted (B12): read it, and make one recipient's copy of it.

A composer message is built by us, so it is rendered from its parts. A submitted
message is the user's own MIME tree (attachments, inline ``cid:`` images, their
client's headers), so it is never rebuilt: its bytes are split into parts by
their boundaries, and only the bodies of its HTML and plain-text parts are
replaced (links routed through the click endpoint, one pixel in the first HTML
part). Every other byte, attachments included, reaches the recipient as the
client wrote it. Of the headers, only Bcc (never shown to recipients) and
``X-MailBeacon-Track`` (our instruction, not part of the mail) are removed; a
missing Message-ID or Date is added.

Signed or encrypted mail (S/MIME, PGP/MIME) is never rewritten: a changed body
would break the signature, and an encrypted one cannot be read.

Pure: bytes in, bytes out; the caller decides tracking (`core.policy`) and signs tokens.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import format_datetime, getaddresses, make_msgid

from mailbeacon.core.rewrite import ClickUrlFor, rewrite_html, rewrite_text

__all__ = [
    "MAX_PARTS",
    "MAX_SUBMISSION_BYTES",
    "TRACK_HEADER",
    "InvalidSubmission",
    "Submission",
    "TrackOverride",
    "read_submission",
    "render_submitted",
    "sent_copy",
]

MAX_SUBMISSION_BYTES = 25 * 1024 * 1024
"""A whole submitted message, attachments included (what common providers accept)."""

MAX_PARTS = 1000
"""MIME parts in one message; more is not mail but an attack on the parser."""

MAX_DEPTH = 30
"""Nesting of multiparts."""

TRACK_HEADER = "X-MailBeacon-Track"
_INSTRUCTIONS = frozenset({TRACK_HEADER.lower()})
_REMOVED_HEADERS = frozenset({"bcc", "resent-bcc"}) | _INSTRUCTIONS
_SEALED_TYPES = frozenset(
    {
        "multipart/signed",
        "multipart/encrypted",
        "application/pkcs7-mime",
        "application/x-pkcs7-mime",
    }
)
_CTE = "content-transfer-encoding"
MAX_LINE_BYTES = 998  # RFC 5322 section 2.1.1, without the line break
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(rb"\r?\n")


class InvalidSubmission(ValueError):
    """A submitted message that cannot be sent; `code` says why (see mail.submission)."""

    def __init__(self, code: str, detail: str) -> None:
        self.code = code
        super().__init__(detail)


@dataclass(frozen=True, slots=True)
class TrackOverride:
    """What ``X-MailBeacon-Track`` asked for: opens and links, each on or off."""

    opens: bool
    links: bool


@dataclass(slots=True)
class _Part:
    """One MIME entity, as byte offsets into the message."""

    start: int  # where its headers begin
    body_start: int
    end: int
    headers: Message
    children: list[_Part] = field(default_factory=list)

    @property
    def content_type(self) -> str:
        return self.headers.get_content_type()

    @property
    def is_attachment(self) -> bool:
        disposition = str(self.headers.get("Content-Disposition", "")).strip().lower()
        return disposition.startswith("attachment")


@dataclass(frozen=True, slots=True)
class Submission:
    """What sending needs to know about a submitted message (its bytes are kept as they are)."""

    from_header: tuple[str, str]  # (name, address); address "" when missing
    to: tuple[tuple[str, str], ...]  # (name, address) of the To header
    cc: tuple[tuple[str, str], ...]
    subject: str
    message_id: str  # "" when the client gave none
    html: str | None  # the first HTML body (what the message page shows; decides open tracking)
    text: str | None  # the first plain-text body
    bodies: tuple[tuple[str, str], ...]  # every rewritable body: ("html" | "text", content)
    sealed: bool  # signed or encrypted: passes untouched
    override: TrackOverride | None
    override_invalid: bool  # an X-MailBeacon-Track value we could not read


def _split_head(raw: bytes, start: int, end: int) -> tuple[int, Message]:
    """Where the part's body starts, and its headers (parsed leniently)."""
    if raw.startswith(b"\r\n", start):
        return start + 2, Message()
    if raw.startswith(b"\n", start):
        return start + 1, Message()
    blank = _BLANK_LINE.search(raw, start, end)
    body_start = blank.end() if blank else end
    head = raw[start:body_start]
    return body_start, BytesHeaderParser(policy=compat32).parsebytes(head)


def _parse(raw: bytes, start: int, end: int, depth: int, count: list[int]) -> _Part:
    count[0] += 1
    if count[0] > MAX_PARTS or depth > MAX_DEPTH:
        raise InvalidSubmission("too_many_parts", f"more than {MAX_PARTS} parts or too deep")
    body_start, headers = _split_head(raw, start, end)
    part = _Part(start, body_start, end, headers)
    boundary = headers.get_boundary() if headers.get_content_maintype() == "multipart" else None
    if boundary:
        part.children = [
            _parse(raw, s, e, depth + 1, count)
            for s, e in _child_ranges(raw, body_start, end, boundary)
        ]
    return part


def _child_ranges(raw: bytes, start: int, end: int, boundary: str) -> list[tuple[int, int]]:
    """The byte ranges of a multipart's body parts (RFC 2046 section 5.1.1).

    A delimiter is a whole line ``--boundary`` (``--boundary--`` closes); the
    line break before it belongs to it, so a part's bytes end where that line
    break begins. Preamble and epilogue are not parts (and are kept as they are).
    Found with `bytes.find`, not a regular expression: a 25 MB attachment is
    scanned at memory speed.
    """
    needle = b"--" + boundary.encode("ascii", "replace")
    ranges: list[tuple[int, int]] = []
    opened: int | None = None
    at = start
    while (found := raw.find(needle, at, end)) >= 0:
        at = found + len(needle)
        if found != start and raw[found - 1 : found] != b"\n":
            continue  # "--boundary" inside a line is text
        line_end = raw.find(b"\n", at, end)
        line_end = end if line_end < 0 else line_end
        rest = raw[at:line_end].rstrip(b"\r")
        closing = rest.startswith(b"--")
        if (rest[2:] if closing else rest).strip(b" \t"):
            continue  # a longer boundary that merely starts like ours
        if opened is not None:
            stop = found
            if stop > opened:
                stop -= 2 if raw[stop - 2 : stop] == b"\r\n" else 1
            ranges.append((opened, max(stop, opened)))
        if closing:
            return ranges
        opened = min(line_end + 1, end)
        at = opened
    if opened is not None:  # no close delimiter: the last part runs to the end
        ranges.append((opened, end))
    return ranges


def _walk(part: _Part) -> list[_Part]:
    """Every part in order; a message/rfc822 attachment counts as one leaf."""
    found = [part]
    for child in part.children:
        found.extend(_walk(child))
    return found


def _charset(part: _Part) -> str | None:
    """The part's charset if it is one we can round-trip byte for byte, else None."""
    name = part.headers.get_content_charset() or "us-ascii"
    try:
        codec = codecs.lookup(name)
    except LookupError:
        return None
    # Rewriting inserts ASCII; only charsets that keep ASCII as single bytes can take it.
    if codec.name.startswith(("utf-16", "utf-32", "utf_16", "utf_32")):
        return None
    return "utf-8" if codec.name in ("ascii", "us-ascii") else codec.name


def _transfer_encoding(part: _Part) -> str:
    return str(part.headers.get("Content-Transfer-Encoding", "7bit")).strip().lower()


def _decode(part: _Part, raw: bytes) -> str | None:
    """The part's body as text, or None if it cannot be rewritten losslessly."""
    charset = _charset(part)
    if charset is None:
        return None
    body = raw[part.body_start : part.end]
    encoding = _transfer_encoding(part)
    try:
        if encoding == "base64":
            data = base64.b64decode(body)
        elif encoding == "quoted-printable":
            data = binascii.a2b_qp(body)
        elif encoding in ("7bit", "8bit", "binary", ""):
            data = body
        else:
            return None
        return data.decode(charset, "surrogateescape")
    except (binascii.Error, ValueError):  # UnicodeError is a ValueError
        return None


def _line_ending(raw: bytes) -> bytes:
    found = _LINE_END.search(raw)
    return found.group(0) if found else b"\r\n"


def _encode(part: _Part, raw: bytes, content: str) -> tuple[bytes, bool]:
    """`content` encoded as the part was (same charset, same transfer encoding), and
    whether it had to become quoted-printable instead.

    A 7bit or 8bit body may not have lines over 998 bytes (RFC 5322); tracked links
    are longer than the originals, so a line near the limit can cross it. Such a
    body is sent quoted-printable, the one change that keeps every character.
    """
    charset = _charset(part)
    assert charset is not None  # _decode read it
    data = content.encode(charset, "surrogateescape")
    encoding = _transfer_encoding(part)
    eol = _line_ending(raw[part.start : part.end])
    switched = False
    if encoding not in ("base64", "quoted-printable"):
        if max(len(line) for line in data.split(b"\n")) <= MAX_LINE_BYTES:
            return data, False
        encoding, switched = "quoted-printable", True
    if encoding == "base64":
        encoded = base64.encodebytes(data).replace(b"\n", eol)
    else:
        encoded = binascii.b2a_qp(data).replace(b"\r\n", b"\n").replace(b"\n", eol)
    # The original body's own ending (often no line break before the delimiter) is kept.
    encoded = encoded.rstrip(b"\r\n")
    ends = raw[part.body_start : part.end].endswith(b"\n")
    return (encoded + eol if ends else encoded), switched


def _body_parts(root: _Part) -> list[tuple[str, _Part]]:
    """The HTML and plain-text bodies a reader sees (not attachments), in order."""
    found: list[tuple[str, _Part]] = []
    for part in _walk(root):
        if part.children or part.is_attachment:
            continue
        if part.content_type == "text/html":
            found.append(("html", part))
        elif part.content_type == "text/plain":
            found.append(("text", part))
    return found


def _storable(content: str) -> str:
    """Text as stored and shown: undecodable bytes become "?", NUL U+FFFD, lines end in LF."""
    text = content.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
    return text.replace("\r\n", "\n")


def _header_text(value: object) -> str:
    """A header as text, encoded words decoded; never raises."""
    try:
        return str(make_header(decode_header(str(value))))
    except (ValueError, LookupError, IndexError):
        return str(value)


def _addresses(headers: Message, name: str) -> tuple[tuple[str, str], ...]:
    values = [_header_text(v) for v in headers.get_all(name, [])]
    return tuple((n, a) for n, a in getaddresses(values) if a)


def _override(value: str | None) -> tuple[TrackOverride | None, bool]:
    if value is None:
        return None, False
    words = {w.strip().lower() for w in value.replace(";", ",").split(",") if w.strip()}
    if words == {"none"}:
        return TrackOverride(False, False), False
    if words and words <= {"opens", "links"}:
        return TrackOverride("opens" in words, "links" in words), False
    return None, True


def _tree(raw: bytes) -> _Part:
    if len(raw) > MAX_SUBMISSION_BYTES:
        raise InvalidSubmission("too_big", f"larger than {MAX_SUBMISSION_BYTES} bytes")
    return _parse(raw, 0, len(raw), 0, [0])


def _is_sealed(root: _Part) -> bool:
    return any(part.content_type in _SEALED_TYPES for part in _walk(root))


def read_submission(raw: bytes) -> Submission:
    """Read what sending needs from a submitted message; InvalidSubmission if it is not mail."""
    root = _tree(raw)
    headers = root.headers
    if not headers.keys():
        raise InvalidSubmission("no_headers", "the message has no header section")
    senders = _addresses(headers, "From")
    sender = senders[0] if len(senders) == 1 else ("", "")
    bodies: list[tuple[str, str]] = []
    for kind, part in _body_parts(root):
        content = _decode(part, raw)
        if content is not None:
            bodies.append((kind, _storable(content)))
    html = next((content for kind, content in bodies if kind == "html"), None)
    text = next((content for kind, content in bodies if kind == "text"), None)
    track = headers.get(TRACK_HEADER)
    override, invalid = _override(None if track is None else _header_text(track))
    return Submission(
        from_header=sender,
        to=_addresses(headers, "To"),
        cc=_addresses(headers, "Cc"),
        subject=" ".join(_header_text(headers.get("Subject", "")).split()),
        message_id=str(headers.get("Message-ID", "")).strip(),
        html=html,
        text=text,
        bodies=tuple(bodies),
        sealed=_is_sealed(root),
        override=override,
        override_invalid=invalid,
    )


def _filtered_head(head: bytes, removed: frozenset[str], added: list[bytes]) -> bytes:
    """A header block without the `removed` headers (continuation lines too), `added` first."""
    kept: list[bytes] = list(added)
    dropping = False
    for line in re.split(rb"(?<=\n)", head):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):  # a continuation of the header above
            if not dropping:
                kept.append(line)
            continue
        name = line.split(b":", 1)[0].strip().lower()
        dropping = name.decode("ascii", "replace") in removed
        if not dropping:
            kept.append(line)
    return b"".join(kept)


def render_submitted(
    raw: bytes,
    *,
    pixel_url: str | None,
    click_url_for: ClickUrlFor | None,
    message_id: str,
    date: datetime,
) -> bytes:
    """One recipient's copy: the submitted bytes with that recipient's pixel and links.

    Only the first HTML body gets the pixel; every HTML and plain-text body (not
    attachments) gets tracked links. Sealed (signed or encrypted) mail keeps its
    body byte for byte. `message_id` and `date` are added only if the client gave none.
    """
    root = _tree(raw)
    eol = _line_ending(raw[root.start : root.body_start] or b"\r\n")
    root_removed = set(_REMOVED_HEADERS)
    added: list[bytes] = []
    if root.headers.get("Message-ID") is None:
        added.append(b"Message-ID: " + message_id.encode("ascii") + eol)
    if root.headers.get("Date") is None:
        added.append(b"Date: " + format_datetime(date).encode("ascii") + eol)
    edits: list[tuple[int, int, bytes]] = []
    if not _is_sealed(root):
        pixel = pixel_url
        for kind, part in _body_parts(root):
            content = _decode(part, raw)
            if content is None:
                continue
            if kind == "html":
                new = rewrite_html(content, pixel_url=pixel, click_url_for=click_url_for)
                pixel = None
            elif click_url_for is not None:
                new = rewrite_text(content, click_url_for)
            else:
                continue
            if new == content:
                continue
            body, switched = _encode(part, raw, new)
            if not switched:
                edits.append((part.body_start, part.end, body))
                continue
            qp = [b"Content-Transfer-Encoding: quoted-printable" + eol]
            if part is root:  # a single-part message: its headers are the message's
                root_removed.add(_CTE)
                added += qp
                edits.append((part.body_start, part.end, body))
            else:
                head = _filtered_head(raw[part.start : part.body_start], frozenset({_CTE}), qp)
                edits.append((part.start, part.end, head + body))
    out = [_filtered_head(raw[root.start : root.body_start], frozenset(root_removed), added)]
    at = root.body_start
    for start, end, replacement in edits:
        out.append(raw[at:start])
        out.append(replacement)
        at = end
    out.append(raw[at:])
    return b"".join(out)


def sent_copy(raw: bytes, *, message_id: str, date: datetime) -> bytes:
    """The copy for the sender's own Sent folder (B2): as submitted, Bcc kept, untracked.

    Only our instruction header goes; a Message-ID and Date are added as for the
    recipients' copies, so the Sent copy and theirs share one Message-ID.
    """
    root = _tree(raw)
    eol = _line_ending(raw[root.start : root.body_start] or b"\r\n")
    added: list[bytes] = []
    if root.headers.get("Message-ID") is None:
        added.append(b"Message-ID: " + message_id.encode("ascii") + eol)
    if root.headers.get("Date") is None:
        added.append(b"Date: " + format_datetime(date).encode("ascii") + eol)
    head = _filtered_head(raw[root.start : root.body_start], _INSTRUCTIONS, added)
    return head + raw[root.body_start :]


def new_message_id(domain: str) -> str:
    """A Message-ID for a submitted message that came without one."""
    return make_msgid(domain=domain or "mailbeacon.invalid")
