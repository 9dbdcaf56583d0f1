"""Issue 6, header injection: every header we write is proven to be one header.

The attack: an RFC 2047 encoded word carrying CR LF in a subject or display name, which
the email package decoded and re-folded into real headers on Python 3.11.7.
"""

from __future__ import annotations

import copy
import pickle
import re
from datetime import UTC, datetime
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.policy import SMTP, compat32, default

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbeacon.core.addresses import Mailbox, parse_mailbox
from mailbeacon.core.compose import InvalidRequest, make_draft
from mailbeacon.core.headers import PreparedHeader, UnsafeHeader, check_header, unstructured
from mailbeacon.core.mime import build_copy, check_copy
from mailbeacon.core.text import one_line

ATTACK = "=?utf-8?q?Hi=0D=0AReply-To:_evil@evil.example?="
ATTACKS = [
    ATTACK,
    "=?utf-8?q?x=0D=0ABcc:_victim@evil.example?=",
    "=?utf-8?b?SGkNClJlcGx5LVRvOiBldmlsQGV2aWwuZXhhbXBsZQ==?=",
    "=?utf-8?q?x=0A=0Abody_injected?=",
    "=?utf-8?q?x=00nul?=",
    "=?utf-8?q?From:_ceo@example.com=0D=0A?= tail",
]
WHEN = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def copy_for(subject: str, name: str = "Me", to_name: str = "") -> EmailMessage:
    return build_copy(
        sender=Mailbox("me@example.com", name),
        to=(Mailbox("anna@example.com", to_name),),
        cc=(),
        subject=subject,
        html="<p>hi</p>",
        text="hi",
        message_id="<id@example.com>",
        date=WHEN,
    )


def parsed(message: EmailMessage) -> EmailMessage:
    back = message_from_bytes(message.as_bytes(), policy=default)
    assert isinstance(back, EmailMessage)
    return back


def display_name(message: EmailMessage, header: str) -> str:
    """The first display name of ``header``, decoded as RFC 2047 says.

    Python's modern parser puts a space between adjacent encoded words in a phrase (RFC
    2047 says whitespace between them is ignored, and mail clients do ignore it), so names
    long enough to need several words are decoded with the legacy, conforming decoder.
    """
    raw = message_from_bytes(message.as_bytes(), policy=compat32)[header]
    value = str(raw).replace("\r\n", "").replace("\n", "")
    if not value.endswith(">"):
        return ""  # a bare address: no display name
    phrase = value.rsplit(" <", 1)[0]
    if phrase.startswith('"'):
        return re.sub(r"\\(.)", r"\1", phrase[1:-1])
    return str(make_header(decode_header(phrase)))


EXPECTED = ["From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type"]


def assert_only_our_headers(back: EmailMessage) -> None:
    assert list(back.keys()) == EXPECTED
    assert back.get_all("From") is not None and len(back.get_all("From")) == 1
    assert back["Reply-To"] is None and back["Bcc"] is None
    assert back.get_body(("plain",)).get_content().strip() == "hi"  # the body is ours


@pytest.mark.parametrize("attack", ATTACKS)
def test_header_injection_encoded_word_subject_stays_text(attack: str) -> None:
    back = parsed(copy_for(attack))
    assert_only_our_headers(back)
    assert str(back["Subject"]) == attack  # the recipient reads what was typed


@pytest.mark.parametrize("attack", ATTACKS)
def test_header_injection_encoded_word_display_names_stay_text(attack: str) -> None:
    copy = copy_for("s", name=attack, to_name=attack)
    back = parsed(copy)
    assert_only_our_headers(back)
    assert display_name(copy, "From") == attack
    assert back["From"].addresses[0].addr_spec == "me@example.com"
    assert display_name(copy, "To") == attack


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\r"])
def test_line_separators_in_subject_and_display_name_are_sent_as_spaces(separator: str) -> None:
    copy = copy_for(f"Hello{separator}there", name=f"Anna{separator}Bo")
    back = parsed(copy)
    assert_only_our_headers(back)
    assert str(back["Subject"]) == "Hello there"
    assert display_name(copy, "From") == "Anna Bo"


def test_line_separators_in_a_draft_subject_are_normalised_not_500() -> None:
    draft = make_draft(
        Mailbox("me@example.com", "Me\u2028Myself"),
        to=[Mailbox("a@example.com")],
        cc=[],
        bcc=[],
        subject="Q3\u2028plan\x85now\u2029",
        html=None,
        text="x",
    )
    assert draft.subject == "Q3 plan now"
    assert draft.sender.name == "Me Myself"


def test_lone_surrogates_are_a_clear_error() -> None:
    with pytest.raises(InvalidRequest) as caught:
        make_draft(
            Mailbox("me@example.com"),
            to=[Mailbox("a@example.com")],
            cc=[],
            bcc=[],
            subject="a\ud800b",
            html=None,
            text="x",
        )
    assert (caught.value.field, caught.value.code) == ("subject", "not_unicode")
    # A name carrying one (it can only come from JSON) is still sendable.
    assert display_name(copy_for("s", name="A\udc00B"), "From") == "A\ufffdB"


@pytest.mark.parametrize(
    "folded",
    [
        b"Subject: a\r\nReply-To: x@evil.example\r\n",
        b"Subject: a\nb\r\n",
        b"Subject: a\rb\r\n",
        b"Subject: a\x00b\r\n",
        b"Subject: a\r\n \r\n",
        b"Subject: a\r\n\r\nbody\r\n",
        b"Subject: a",
        b"Subject: \xc3\xa4\r\n",
        b"Reply-To: a\r\n",
        b"Subject: " + b"a" * 1000 + b"\r\n",
    ],
)
def test_check_header_refuses_anything_but_one_header(folded: bytes) -> None:
    with pytest.raises(UnsafeHeader):
        check_header("Subject", folded)


def test_check_header_accepts_proper_folding() -> None:
    check_header("Subject", b"Subject: a\r\n b\r\n\tc\r\n")


def test_copies_of_a_copy_write_the_same_headers() -> None:
    message = copy_for(ATTACK, name="Ånna")
    for other in (copy.deepcopy(message), pickle.loads(pickle.dumps(message))):  # noqa: S301
        for name in ("From", "To", "Subject", "Date", "Message-ID"):
            assert other[name].fold(policy=SMTP) == message[name].fold(policy=SMTP)
        check_copy(other)


def test_a_copy_with_a_smuggled_header_is_refused() -> None:
    message = copy_for("s")
    message["Reply-To"] = PreparedHeader("Reply-To", ["evil@evil.example"])
    with pytest.raises(UnsafeHeader):
        check_copy(message)


def test_a_prepared_header_that_would_break_a_line_is_refused() -> None:
    message = EmailMessage(policy=SMTP)
    message["Subject"] = PreparedHeader("Subject", ["Hi\r\nBcc: x@evil.example"])
    with pytest.raises(UnsafeHeader):
        check_copy(message)


@pytest.mark.parametrize("bad", ["<a@b>\r\nBcc: x", "no-brackets@x", "<a@b> <c@d>", "<>", ""])
def test_bad_message_ids_are_refused(bad: str) -> None:
    with pytest.raises(UnsafeHeader):
        build_copy(
            sender=Mailbox("me@example.com"),
            to=(Mailbox("a@example.com"),),
            cc=(),
            subject="s",
            html=None,
            text="t",
            message_id=bad,
            date=WHEN,
        )


def test_long_subjects_fold_within_line_limits() -> None:
    subject = ("word " * 150).strip()
    raw = copy_for(subject).as_bytes()
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    assert str(parsed(copy_for(subject))["Subject"]) == subject
    assert unstructured("Subject", "plain words").lines == ("plain words",)


# Text a person (or an attacker) could type: anything, with encoded-word fragments mixed in.
_PIECES = st.sampled_from(
    [*ATTACKS, "=?", "?=", "\r\n", "\n", "\r", "\x00", "\u2028", "\x85", '"', "\\", "<", ">",
     ",", ";", "(", ")", ":", "@", " ", "\t", "Bcc: x@evil.example", "Reply-To:", "ü", "😀"]
)  # fmt: skip
header_text = st.lists(st.one_of(_PIECES, st.text(max_size=12)), max_size=12).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=header_text, from_name=header_text, to_name=header_text)
def test_header_injection_property_any_subject_and_names(
    subject: str, from_name: str, to_name: str
) -> None:
    """Whatever the subject and display names, the copy parses back with exactly our
    headers, one From, no Reply-To or Bcc, and the subject as the draft holds it (or the
    draft is refused with InvalidRequest)."""
    try:
        sender = parse_mailbox(str(Mailbox("me@example.com", from_name)))
        draft = make_draft(
            sender,
            to=[Mailbox("anna@example.com", to_name)],
            cc=[],
            bcc=[Mailbox("hidden@example.com")],
            subject=subject,
            html="<p>hi</p>",
            text="hi",
        )
    except InvalidRequest:
        return
    copy = build_copy(
        sender=draft.sender,
        to=draft.to,
        cc=draft.cc,
        subject=draft.subject,
        html=draft.html,
        text=draft.text,
        message_id="<id@example.com>",
        date=WHEN,
    )
    back = parsed(copy)
    assert_only_our_headers(back)
    assert str(back["Subject"]) == draft.subject
    assert display_name(copy, "From") == " ".join(one_line(from_name).split())
    assert back["From"].addresses[0].addr_spec == "me@example.com"
    assert [a.addr_spec for a in back["To"].addresses] == ["anna@example.com"]
    assert b"hidden@example.com" not in copy.as_bytes()
