"""Addresses from people and MIME for each copy: header injection never gets through."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbeacon.core.addresses import InvalidAddress, Mailbox, parse_mailbox, parse_mailboxes
from mailbeacon.core.compose import InvalidRequest, make_draft
from mailbeacon.core.limits import MAX_LINKS, MAX_MAILBOX_CHARS, MAX_RECIPIENTS
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


# --------------------------------------------------------------------------------------------
# Issue 6: bounded parsing, explicit limits, clear errors


def test_nested_parentheses_in_an_address_are_a_clear_error_not_recursion() -> None:
    with pytest.raises(InvalidAddress):
        parse_mailbox("(" * 500 + "a@example.com")
    with pytest.raises(InvalidAddress):
        parse_mailboxes("(" * 900 + "a@example.com" + ")" * 900)
    # A legitimate comment still reads as the name, nested or not.
    assert parse_mailbox("anna@example.com (Anna (Sales))") == Mailbox(
        "anna@example.com", "Anna (Sales)"
    )


def test_huge_address_field_is_refused_before_parsing() -> None:
    huge = "a@example.com, " * 200_000  # 3 MB
    started = time.perf_counter()
    with pytest.raises(InvalidAddress) as caught:
        parse_mailboxes(huge)
    assert time.perf_counter() - started < 0.05  # a length check, not a parse
    assert caught.value.code == "address_too_long"
    assert len(str(caught.value)) < 200  # the error does not echo 3 MB back


def test_too_many_addresses_are_refused_by_count_before_parsing() -> None:
    field = ", ".join(f"user{i}@example.com" for i in range(MAX_RECIPIENTS + 1))
    with pytest.raises(InvalidAddress) as caught:
        parse_mailboxes(field)
    assert caught.value.code == "too_many_addresses"
    with pytest.raises(InvalidAddress):
        parse_mailboxes(["a@example.com"] * (MAX_RECIPIENTS + 1))
    assert len(parse_mailboxes(["a@example.com"] * MAX_RECIPIENTS)) == MAX_RECIPIENTS


def test_one_overlong_mailbox_is_refused() -> None:
    with pytest.raises(InvalidAddress) as caught:
        parse_mailbox("x" * (MAX_MAILBOX_CHARS + 1) + "@example.com")
    assert caught.value.code == "address_too_long"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"Doe, John" <john@example.com>', Mailbox("john@example.com", "Doe, John")),
        ('"a \\"b\\" c" <x@example.com>', Mailbox("x@example.com", 'a "b" c')),
        ("<x@example.com>", Mailbox("x@example.com")),
        ("Dr. Anna   Bo <x@example.com>", Mailbox("x@example.com", "Dr. Anna Bo")),
        ("=?utf-8?q?Hi=0D=0ABcc:_x?= <x@example.com>",
         Mailbox("x@example.com", "=?utf-8?q?Hi=0D=0ABcc:_x?=")),
    ],
)  # fmt: skip
def test_mailbox_forms(value: str, expected: Mailbox) -> None:
    assert parse_mailbox(value) == expected


@pytest.mark.parametrize(
    "value",
    ["a@example.com <b@example.com>x", "<a@example.com> <b@example.com>", '"open <a@example.com>',
     "a@example.com, b@example.com", "(unclosed a@example.com", "<a@example.com"],
)  # fmt: skip
def test_not_one_mailbox(value: str) -> None:
    with pytest.raises(InvalidAddress):
        parse_mailbox(value)


@given(st.text(max_size=80))
def test_any_display_name_survives_str_and_parse(name: str) -> None:
    """Settings store any name; sending reads it back through str() and parse_mailbox."""
    box = Mailbox("me@example.com", name)
    assert parse_mailbox(str(box)) == box
    assert "\n" not in box.name and "\u2028" not in box.name and "\x85" not in box.name


def test_too_many_links_are_refused_naming_the_limit() -> None:
    html = "".join(f'<a href="https://x.example/{i}">x</a>' for i in range(MAX_LINKS + 1))
    with pytest.raises(InvalidRequest) as caught:
        make_draft(sender(), to=[Mailbox("a@example.com")], cc=[], bcc=[], subject="s",
                   html=html, text=None)  # fmt: skip
    assert caught.value.code == "too_many_links"
    assert str(MAX_LINKS) in caught.value.problem
    html = "".join(f'<a href="https://x.example/{i % MAX_LINKS}">x</a>' for i in range(3000))
    draft = make_draft(sender(), to=[Mailbox("a@example.com")], cc=[], bcc=[], subject="s",
                       html=html, text=None)  # fmt: skip
    assert len(draft.links()) == MAX_LINKS  # repeats of one link count once


def test_too_many_addresses_in_one_field_name_the_recipient_limit() -> None:
    field = ", ".join(f"user{i}@example.com" for i in range(MAX_RECIPIENTS + 1))
    try:
        parse_mailboxes(field)
    except InvalidAddress as exc:
        error = InvalidRequest.from_address("cc", exc)
    assert (error.field, error.code) == ("cc", "too_many_recipients")
    assert str(MAX_RECIPIENTS) in error.problem
