"""MIME for one recipient's copy, built with the standard `email` package.

Every copy of a message shares its headers and its Message-ID (B1); only the
body differs, carrying that recipient's own pixel and link tokens. Bcc never
appears in a header: the envelope alone delivers it.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from mailbeacon.core.addresses import Mailbox


def new_message_id(domain: str) -> str:
    """A fresh Message-ID on the sender's domain."""
    return make_msgid(domain=domain or "mailbeacon.invalid")


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
    """One copy: multipart/alternative when both bodies exist, else the one there is."""
    message = EmailMessage(policy=SMTP)
    message["From"] = str(sender)
    if to:
        message["To"] = ", ".join(str(box) for box in to)
    if cc:
        message["Cc"] = ", ".join(str(box) for box in cc)
    if not to and not cc:
        message["To"] = "undisclosed-recipients:;"
    message["Subject"] = subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    if text is not None or html is None:
        message.set_content(text or "", subtype="plain", charset="utf-8")
        if html is not None:
            message.add_alternative(html, subtype="html", charset="utf-8")
    else:
        message.set_content(html, subtype="html", charset="utf-8")
    return message
