"""core.sentcopy: the copy for the sender's Sent folder is the message as written (S12, B2)."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy

from hypothesis import given
from hypothesis import strategies as st

from mailbeacon.core.addresses import Mailbox
from mailbeacon.core.mime import build_copy
from mailbeacon.core.sentcopy import (
    SENT_COPY_HEADER,
    SENT_COPY_VALUE,
    build_sent_copy,
    sent_copy_bytes,
)

WHEN = datetime(2026, 11, 29, 13, 0, tzinfo=UTC)
HTML = (
    '<p>Prices: <a href="https://example.com/p?a=1&amp;b=2">here</a></p><!--[if mso]>x<![endif]-->'
)


def parsed(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=default_policy)
    assert isinstance(message, EmailMessage)
    return message


def sent_copy(bcc: tuple[Mailbox, ...] = (), name: str = "Ann") -> EmailMessage:
    return build_sent_copy(
        sender=Mailbox("me@example.com", "Me"),
        to=(Mailbox("ann@example.com", name),),
        cc=(Mailbox("bob@example.com", ""),),
        bcc=bcc,
        subject="Prices",
        html=HTML,
        text="Prices: https://example.com/p?a=1&b=2",
        message_id="<1.2@example.com>",
        date=WHEN,
    )


def test_the_sent_copy_keeps_bcc_and_carries_the_mark_no_recipient_copy_has() -> None:
    copy = parsed(sent_copy_bytes(sent_copy((Mailbox("carl@example.com", "Carl Ö"),))))
    assert copy["Bcc"] == "Carl Ö <carl@example.com>"
    assert copy[SENT_COPY_HEADER] == SENT_COPY_VALUE
    recipients_copy = build_copy(
        sender=Mailbox("me@example.com", "Me"),
        to=(Mailbox("ann@example.com", "Ann"),),
        cc=(),
        subject="Prices",
        html=HTML,
        text=None,
        message_id="<1.2@example.com>",
        date=WHEN,
    )
    assert SENT_COPY_HEADER not in recipients_copy
    assert "Bcc" not in recipients_copy


def test_the_sent_copy_has_the_bodies_byte_for_byte_and_the_same_headers() -> None:
    copy = parsed(sent_copy_bytes(sent_copy()))
    html = copy.get_body(preferencelist=("html",))
    assert html is not None and html.get_content().rstrip("\r\n") == HTML
    assert copy["Message-ID"] == "<1.2@example.com>"
    assert copy["To"] == "Ann <ann@example.com>"
    assert copy["Cc"] == "bob@example.com"
    assert "Bcc" not in copy  # none given: none written


@given(st.text(max_size=60))
def test_no_name_can_add_a_header_to_the_sent_copy(name: str) -> None:
    try:
        copy = sent_copy(bcc=(Mailbox("carl@example.com", name),), name=name)
    except ValueError:
        return  # refused outright (UnsafeHeader is a ValueError): fine
    headers = [key.lower() for key, _value in parsed(sent_copy_bytes(copy)).items()]
    assert sorted(headers) == sorted(
        [
            "from",
            "to",
            "cc",
            "subject",
            "date",
            "message-id",
            "mime-version",
            "content-type",
            "bcc",
            SENT_COPY_HEADER.lower(),
        ]
    )
