"""The Sent copy of a message submitted by a mail client (B12 with S12/B2): the client's
own bytes, attachment and Bcc kept, untracked, with the mark that tells it from the
tracked copies a provider saves."""

from __future__ import annotations

from datetime import UTC, datetime

from mailbeacon.core.sentcopy import SENT_COPY_HEADER
from mailbeacon.mail.sentfolder import clean_copy
from mailbeacon.store.sentcopies import SentCopyJob

RAW = (
    b"From: Seller <seller@example.com>\r\n"
    b"To: anna@example.com\r\n"
    b"Bcc: boss@example.com\r\n"
    b"Subject: Offer\r\n"
    b"X-MailBeacon-Track: none\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b'<p>See <a href="https://example.com/pricing">prices</a></p>\r\n'
    b"--b1\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b'Content-Disposition: attachment; filename="offer.bin"\r\n'
    b"\r\n"
    b"AAECAwQFBgcICQ==\r\n"
    b"--b1--\r\n"
)


def test_a_submitted_messages_sent_copy_is_its_own_bytes_marked_and_untracked() -> None:
    job = SentCopyJob(
        message_id=1,
        user_id=1,
        attempts=0,
        message_id_header="<m1@example.com>",
        from_address="seller@example.com",
        subject="Offer",
        html=None,
        text=None,
        created_at=datetime(2026, 11, 29, tzinfo=UTC),
        to=(("anna@example.com", ""),),
        cc=(),
        bcc=(("boss@example.com", ""),),
        raw_source=RAW,
    )
    copy = clean_copy(job)
    assert copy.startswith(f"{SENT_COPY_HEADER}: clean\r\n".encode())
    assert b"Bcc: boss@example.com\r\n" in copy
    assert b"X-MailBeacon-Track" not in copy
    assert b"Message-ID: <m1@example.com>" in copy
    assert b"AAECAwQFBgcICQ==\r\n" in copy  # the attachment, byte for byte
    assert b'href="https://example.com/pricing"' in copy and b"/o/" not in copy
