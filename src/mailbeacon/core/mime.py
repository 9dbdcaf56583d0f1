"""MIME for one recipient's copy.

Every copy of a message shares its headers and its Message-ID (B1); only the
body differs, carrying that recipient's own pixel and link tokens. Bcc never
appears in a header: the envelope alone delivers it.

Headers are encoded by :mod:`mailbeacon.core.headers`, never by handing user text to
the email package (which decodes RFC 2047 words in it: header injection on 3.11.7);
the bodies are the email package's. Before a copy is returned, every header of every
part is written out and checked byte by byte (:func:`check_copy`): a copy whose headers
could be read as anything but the headers we meant is refused with UnsafeHeader.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from mailbeacon.core import headers
from mailbeacon.core.addresses import Mailbox
from mailbeacon.core.headers import UnsafeHeader
from mailbeacon.core.limits import MAX_FILENAME_CHARS

__all__ = [
    "COPY_HEADERS",
    "FileAttachment",
    "UnsafeHeader",
    "build_copy",
    "check_copy",
    "new_message_id",
    "safe_content_type",
    "safe_filename",
]

# Every header a copy's top level may carry; anything else means something got in.
COPY_HEADERS = frozenset(
    {
        "from",
        "to",
        "cc",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    }
)
_PART_HEADERS = frozenset(
    {"content-type", "content-transfer-encoding", "mime-version", "content-disposition"}
)
_MIME_NAME = r"[A-Za-z0-9!#$&^_.+-]{1,100}"
_CONTENT_TYPE = re.compile(rf"{_MIME_NAME}/{_MIME_NAME}")
# Characters a file name never keeps: path separators, controls, and what Windows refuses.
_FILENAME_DROP = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')


@dataclass(frozen=True, slots=True)
class FileAttachment:
    """A file as it goes into every copy: a safe name, a checked type, the bytes."""

    filename: str
    content_type: str
    data: bytes


def safe_filename(name: str) -> str:
    """A file name fit for a header and any recipient's disk.

    Only the last path component is kept (browsers on Windows used to send
    ``C:\\Users\\...``); controls, separators and reserved characters go; a name
    that starts with dots loses them (no hidden or ``..`` files); it is NFC and at
    most MAX_FILENAME_CHARS characters, the extension kept. Non-ASCII names are
    written with RFC 2231 by the email package.
    """
    base = re.split(r"[/\\]", name)[-1]
    clean = " ".join(_FILENAME_DROP.sub(" ", unicodedata.normalize("NFC", base)).split())
    clean = clean.lstrip(". ")
    if len(clean) > MAX_FILENAME_CHARS:
        _stem, dot, ext = clean.rpartition(".")
        keep = ext if dot and len(ext) <= 16 else ""
        clean = clean[: MAX_FILENAME_CHARS - len(keep) - 1].rstrip() + ("." + keep if keep else "")
    return clean or "attachment"


def safe_content_type(value: str) -> str:
    """The browser's type for a file if it is a plain ``type/subtype``, else
    application/octet-stream (a type never carries parameters or line breaks in)."""
    value = value.strip().lower()
    return value if _CONTENT_TYPE.fullmatch(value) else "application/octet-stream"


def new_message_id(domain: str) -> str:
    """A fresh Message-ID on the sender's domain."""
    return make_msgid(domain=domain or "mailbeacon.invalid")


def _boxes(boxes: tuple[Mailbox, ...]) -> list[tuple[str, str]]:
    return [(box.name, box.address) for box in boxes]


def build_copy(
    *,
    sender: Mailbox,
    to: tuple[Mailbox, ...],
    cc: tuple[Mailbox, ...],
    subject: str,
    html: str | None,
    text: str | None,
    message_id: str,
    date: datetime,
    attachments: tuple[FileAttachment, ...] = (),
) -> EmailMessage:
    """One copy: multipart/alternative when both bodies exist, else the one there is;
    with attachments, that inside multipart/mixed followed by each file (base64, its
    name in RFC 2231 form when not ASCII).

    Raises UnsafeHeader if any header fails the final check (it cannot with the encoders
    here; the check is there so that no future change or interpreter can make it happen).
    """
    message = EmailMessage(policy=SMTP)
    message["From"] = headers.address_list("From", _boxes((sender,)))
    if to:
        message["To"] = headers.address_list("To", _boxes(to))
    if cc:
        message["Cc"] = headers.address_list("Cc", _boxes(cc))
    if not to and not cc:
        message["To"] = headers.plain("To", "undisclosed-recipients:;")
    message["Subject"] = headers.unstructured("Subject", subject)
    message["Date"] = headers.plain("Date", format_datetime(date))
    message["Message-ID"] = headers.message_id(message_id)
    if text is not None or html is None:
        message.set_content(text or "", subtype="plain", charset="utf-8")
        if html is not None:
            message.add_alternative(html, subtype="html", charset="utf-8")
    else:
        message.set_content(html, subtype="html", charset="utf-8")
    for attachment in attachments:
        maintype, _, subtype = safe_content_type(attachment.content_type).partition("/")
        message.add_attachment(
            attachment.data,
            maintype=maintype,
            subtype=subtype,
            filename=safe_filename(attachment.filename),
        )
    check_copy(message)
    return message


def check_copy(message: EmailMessage) -> None:
    """Write out every header of every part and prove each is one header of a known name.

    Only headers are serialised (bodies are the email package's own encoding of our text),
    so the check costs little next to building the copy.
    """
    policy = message.policy.clone(linesep="\r\n")
    for depth, part in enumerate(message.walk()):
        allowed = COPY_HEADERS if depth == 0 else _PART_HEADERS
        seen: set[str] = set()
        for name, value in part.raw_items():
            lowered = name.lower()
            if lowered not in allowed or lowered in seen:
                raise UnsafeHeader(f"unexpected or repeated header {name!r}")
            seen.add(lowered)
            headers.check_header(name, policy.fold_binary(name, value))
