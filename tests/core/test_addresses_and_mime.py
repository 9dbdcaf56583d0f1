"""Addresses from people and MIME for each copy: header injection never gets through."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbeacon.core.addresses import InvalidAddress, Mailbox, parse_mailbox, parse_mailboxes
from mailbeacon.core.compose import InvalidRequest, make_draft
from mailbeacon.core.mime import build_copy


@pytest.mark.parametrize(
    "value",
    [
        "anna@example.com\r\nBcc: x@example.com",
        "anna@example.com\nX: y",
        "not an address",
        "a@b",
        "@example.com",
        "anna@",
        "a b@example.com",
        "",
    ],
)
def test_bad_addresses_are_refused(value: str) -> None:
    with pytest.raises(InvalidAddress):
        parse_mailbox(value)


def test_names_and_lists() -> None:
    assert parse_mailbox("Anna Ångström <anna@example.com>") == Mailbox(
        "anna@example.com", "Anna Ångström"
    )
    boxes = parse_mailboxes('"Doe, John" <john@example.com>; ann@example.com, bo@example.org')
    assert [b.address for b in boxes] == ["john@example.com", "ann@example.com", "bo@example.org"]
    assert boxes[0].name == "Doe, John"


@given(st.text(max_size=60))
def test_parsing_never_lets_a_line_break_through(value: str) -> None:
    try:
        boxes = parse_mailboxes(value)
    except InvalidAddress:
        return
    for box in boxes:
        assert "\n" not in str(box) and "\r" not in str(box)


def sender() -> Mailbox:
    return Mailbox("me@example.com", "Me Myself")


def test_subject_with_line_break_is_refused() -> None:
    with pytest.raises(InvalidRequest) as caught:
        make_draft(
            sender(),
            to=[Mailbox("a@example.com")],
            cc=[],
            bcc=[],
            subject="Hi\r\nBcc: victim@example.com",
            html="<p>x</p>",
            text=None,
        )
    assert caught.value.field == "subject"


def test_copy_headers_and_parts() -> None:
    copy = build_copy(
        sender=sender(),
        to=(Mailbox("anna@example.com", "Anna Ångström"),),
        cc=(Mailbox("cc@example.com"),),
        subject="Grüße — 2027",
        html="<p>Hällo</p>",
        text="Hällo",
        message_id="<abc@example.com>",
        date=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
    )
    parsed = message_from_bytes(copy.as_bytes(), policy=default)
    assert parsed["Subject"] == "Grüße — 2027"
    assert parsed["To"] == "Anna Ångström <anna@example.com>"
    assert parsed["Cc"] == "cc@example.com"
    assert parsed["Bcc"] is None
    assert parsed["Message-ID"] == "<abc@example.com>"
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed.get_body(("html",)).get_content().strip() == "<p>Hällo</p>"
    assert parsed.get_body(("plain",)).get_content().strip() == "Hällo"
    assert all(len(line) <= 998 for line in copy.as_bytes().split(b"\r\n"))


def test_bcc_only_message_has_undisclosed_recipients() -> None:
    copy = build_copy(
        sender=sender(),
        to=(),
        cc=(),
        subject="s",
        html=None,
        text="t",
        message_id="<a@b.example>",
        date=datetime.now(UTC),
    )
    assert copy["To"] == "undisclosed-recipients:;"
    assert copy.get_content_type() == "text/plain"
