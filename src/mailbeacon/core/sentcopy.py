"""The copy for the sender's own Sent folder (S12, B2): the message as the user wrote it.

What recipients get differs per copy (their own pixel and link tokens, B1) and
never names the Bcc recipients. The sender's Sent folder gets what a mail client
would have saved: the same headers and Message-ID, the bodies as written (no
pixel, the original links), and a Bcc header naming the Bcc recipients, which
only the sender ever sees.

It also carries `SENT_COPY_HEADER`, a header no copy sent to a recipient has
(see core/mime.py's COPY_HEADERS). That is how the worker tells its own clean
copy apart from the tracked copies a provider such as Gmail saves in Sent by
itself, all of which have the same Message-ID: it keeps the one and removes the
others, and after a restart it finds the one it already saved instead of saving
a second.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8

from mailbeacon.core import headers
from mailbeacon.core.addresses import Mailbox
from mailbeacon.core.mime import COPY_HEADERS, build_copy

SENT_COPY_HEADER = "X-MailBeacon-Sent-Copy"
SENT_COPY_VALUE = "clean"

# build_copy cannot emit our marker: a tracked copy can never pass for the clean one.
assert SENT_COPY_HEADER.lower() not in COPY_HEADERS


def build_sent_copy(
    *,
    sender: Mailbox,
    to: tuple[Mailbox, ...],
    cc: tuple[Mailbox, ...],
    bcc: tuple[Mailbox, ...],
    subject: str,
    html: str | None,
    text: str | None,
    message_id: str,
    date: datetime,
) -> EmailMessage:
    """The clean copy: build_copy's headers and the untouched bodies, plus Bcc and the mark.

    Raises UnsafeHeader (from core.headers) if a header could be read as anything else.
    """
    message = build_copy(
        sender=sender,
        to=to,
        cc=cc,
        subject=subject,
        html=html,
        text=text,
        message_id=message_id,
        date=date,
    )
    added = []
    if bcc:
        added.append(("Bcc", headers.address_list("Bcc", [(b.name, b.address) for b in bcc])))
    added.append((SENT_COPY_HEADER, headers.plain(SENT_COPY_HEADER, SENT_COPY_VALUE)))
    policy = message.policy.clone(linesep="\r\n")
    for name, value in added:
        headers.check_header(name, policy.fold_binary(name, value))
        message[name] = value
    return message


def sent_copy_bytes(message: EmailMessage) -> bytes:
    """The copy as APPEND sends it: CRLF line endings, 8-bit headers only where needed."""
    ascii_only = all(str(value).isascii() for value in message.values())
    return message.as_bytes(policy=SMTP if ascii_only else SMTPUTF8)
