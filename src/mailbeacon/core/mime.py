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

from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from mailbeacon.core import headers
from mailbeacon.core.addresses import Mailbox
from mailbeacon.core.headers import UnsafeHeader

__all__ = ["COPY_HEADERS", "UnsafeHeader", "build_copy", "check_copy", "new_message_id"]

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
_PART_HEADERS = frozenset({"content-type", "content-transfer-encoding", "mime-version"})


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
) -> EmailMessage:
    """One copy: multipart/alternative when both bodies exist, else the one there is.

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
