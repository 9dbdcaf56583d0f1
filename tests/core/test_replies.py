"""core.replies: replies, auto-replies and bounces told apart from raw inbox bytes (B11)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from mailbeacon.core.replies import AUTO_REPLY_SUBJECTS, Kind, analyse, needs_body

OURS = "<abc.123@sales.example>"


def mail(headers: str, body: str = "Thanks, sounds good.\r\n") -> bytes:
    return (headers.strip().replace("\n", "\r\n") + "\r\n\r\n" + body).encode()


def reply(extra: str = "", subject: str = "Re: Our offer") -> bytes:
    return mail(
        f"""
From: =?utf-8?q?Anna_M=C3=BCller?= <Anna@Client.example>
To: Sam <sam@sales.example>
Subject: {subject}
Date: Sun, 29 Nov 2026 14:05:00 +0100
Message-ID: <reply.1@client.example>
In-Reply-To: {OURS}
References: <older@sales.example> {OURS}
{extra}
"""
    )


def test_a_plain_reply_names_our_message_id_its_sender_and_date() -> None:
    found = analyse(reply())
    assert found.kind is Kind.REPLY
    assert found.references[0] == OURS
    assert "<older@sales.example>" in found.references
    assert found.from_address == "anna@client.example"
    assert found.from_name == "Anna Müller"
    assert found.date == datetime(2026, 11, 29, 13, 5, tzinfo=UTC)
    assert found.message_id == "<reply.1@client.example>"
    assert found.bounce is None


def test_a_reply_found_by_references_alone() -> None:
    raw = mail(f"From: a@b.example\nSubject: Re: x\nReferences: <x@y> {OURS}")
    found = analyse(raw)
    assert found.kind is Kind.REPLY
    assert found.references == (OURS, "<x@y>")  # newest first


def test_a_message_that_refers_to_nothing_is_other() -> None:
    assert analyse(mail("From: a@b.example\nSubject: hello")).kind is Kind.OTHER


def test_auto_submitted_marks_an_auto_reply_but_auto_submitted_no_does_not() -> None:
    assert analyse(reply("Auto-Submitted: auto-replied (vacation)")).kind is Kind.AUTO_REPLY
    assert analyse(reply("Auto-Submitted: auto-generated")).kind is Kind.AUTO_REPLY
    assert analyse(reply("Auto-Submitted: no")).kind is Kind.REPLY


def test_vendor_headers_and_precedence_mark_auto_replies() -> None:
    for header in (
        "X-Autoreply: yes",
        "X-Autorespond: on vacation",
        "Precedence: auto_reply",
        "Precedence: bulk",
        "X-Precedence: junk",
    ):
        found = analyse(reply(header))
        assert found.kind is Kind.AUTO_REPLY, header
        assert found.auto_reason
    assert analyse(reply("Precedence: list")).kind is Kind.REPLY


def test_x_auto_response_suppress_alone_is_a_human_reply() -> None:
    # Outlook puts it on ordinary mail; it asks others not to auto-reply.
    assert analyse(reply("X-Auto-Response-Suppress: All")).kind is Kind.REPLY
    oof = reply("X-Auto-Response-Suppress: All", subject="Automatic reply: Our offer")
    assert analyse(oof).kind is Kind.AUTO_REPLY


def test_out_of_office_subjects_in_every_listed_language() -> None:
    for phrase, language, _source in AUTO_REPLY_SUBJECTS:
        found = analyse(reply(subject=f"{phrase.title()}: Our offer"))
        assert found.kind is Kind.AUTO_REPLY, (phrase, language)
        assert language in found.auto_reason


def test_encoded_polish_out_of_office_subject() -> None:
    word = base64.b64encode("Automatyczna odpowiedź: Oferta".encode()).decode()
    assert analyse(reply(subject=f"=?utf-8?b?{word}?=")).kind is Kind.AUTO_REPLY


def test_a_human_reply_mentioning_out_of_office_is_still_a_reply() -> None:
    assert analyse(reply(subject="Re: Out of office party")).kind is Kind.REPLY


def dsn(action: str = "failed", status: str = "5.1.1", returned: str = "message/rfc822") -> bytes:
    original = (
        "From: sam@sales.example\r\nTo: bob@gone.example\r\n"
        f"Message-ID: {OURS}\r\nSubject: Our offer\r\n"
    )
    returned_part = (
        f"Content-Type: {returned}\r\n\r\n{original}\r\nHello Bob\r\n"
        if returned == "message/rfc822"
        else f"Content-Type: {returned}\r\n\r\n{original}"
    )
    body = (
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.sales.example\r\n"
        "Arrival-Date: Sun, 29 Nov 2026 14:00:00 +0000\r\n\r\n"
        "Final-Recipient: rfc822; Bob@Gone.example\r\n"
        "Original-Recipient: rfc822;bob@gone.example\r\n"
        f"Action: {action}\r\nStatus: {status}\r\n"
        "Remote-MTA: dns; mx.gone.example\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <bob@gone.example>:\r\n"
        " Recipient address rejected: User unknown\r\n"
        "\r\n"
        f"--B\r\n{returned_part}\r\n--B--\r\n"
    )
    return mail(
        """
From: MAILER-DAEMON@mx.sales.example (Mail Delivery System)
To: sam@sales.example
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
Date: Sun, 29 Nov 2026 14:00:01 +0000
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"
""",
        body,
    )


def test_an_rfc3464_report_names_the_failed_recipient_status_and_original_message() -> None:
    found = analyse(dsn())
    assert found.kind is Kind.BOUNCE
    assert found.bounce is not None
    assert found.bounce.standard
    assert found.bounce.original_message_id == OURS
    (failed,) = found.bounce.failed
    assert failed.address == "bob@gone.example"
    assert failed.status == "5.1.1"
    assert "User unknown" in failed.diagnostic
    assert not failed.diagnostic.startswith("smtp;")


def test_a_report_returning_only_headers_still_names_the_original() -> None:
    found = analyse(dsn(returned="text/rfc822-headers"))
    assert found.bounce is not None
    assert found.bounce.original_message_id == OURS


def test_a_delay_report_is_no_bounce_and_no_auto_reply() -> None:
    found = analyse(dsn(action="delayed", status="4.4.7"))
    assert found.kind is Kind.OTHER


def test_an_exim_style_bounce_from_the_mailer_daemon() -> None:
    raw = mail(
        """
From: Mail Delivery System <Mailer-Daemon@mx.example>
To: sam@sales.example
Subject: Mail delivery failed: returning message to sender
X-Failed-Recipients: carl@nowhere.example
""",
        "This message was created automatically by mail delivery software.\r\n\r\n"
        "  carl@nowhere.example\r\n    host mx.nowhere.example said: 550 5.1.1 No such user\r\n\r\n"
        "------ This is a copy of the message, including all the headers. ------\r\n\r\n"
        f"Message-ID: {OURS}\r\nSubject: Our offer\r\n",
    )
    found = analyse(raw)
    assert found.kind is Kind.BOUNCE
    assert found.bounce is not None
    assert not found.bounce.standard
    assert found.bounce.original_message_id == OURS
    assert [f.address for f in found.bounce.failed] == ["carl@nowhere.example"]
    assert found.bounce.failed[0].status == "5.1.1"


def test_a_person_cannot_bounce_a_recipient_with_x_failed_recipients() -> None:
    found = analyse(reply("X-Failed-Recipients: bob@gone.example"))
    assert found.kind is Kind.REPLY


def test_garbage_gives_other_not_an_exception() -> None:
    for raw in (
        b"",
        b"\x00\xff" * 100,
        b"From: \r\n\r\n",
        b"Content-Type: multipart/report\r\n\r\n",
    ):
        assert analyse(raw).kind is Kind.OTHER


HEADER_NAMES = st.sampled_from(
    [
        "From",
        "Date",
        "Subject",
        "Message-ID",
        "In-Reply-To",
        "References",
        "Auto-Submitted",
        "Precedence",
        "Content-Type",
        "X-Failed-Recipients",
        "Content-Transfer-Encoding",
    ]
)
HEADER_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=120
)


@given(st.binary(max_size=3000))
def test_any_bytes_are_read_without_an_exception(raw: bytes) -> None:
    found = analyse(raw)
    assert isinstance(found.kind, Kind)


@given(st.lists(st.tuples(HEADER_NAMES, HEADER_TEXT), max_size=12), HEADER_TEXT)
def test_any_headers_are_read_without_an_exception(
    headers: list[tuple[str, str]], body: str
) -> None:
    raw = "".join(f"{name}: {value}\r\n" for name, value in headers) + "\r\n" + body
    found = analyse(raw.encode("utf-8", "surrogatepass"))
    assert isinstance(found.kind, Kind)
    for reference in found.references:
        assert reference.startswith("<") and reference.endswith(">")


@given(
    st.sampled_from([dsn(), dsn(returned="text/rfc822-headers"), reply()]),
    st.integers(min_value=0, max_value=2000),
    st.binary(max_size=40),
)
def test_damaged_reports_and_replies_never_raise(raw: bytes, at: int, junk: bytes) -> None:
    at = min(at, len(raw))
    analyse(raw[:at] + junk + raw[at:])
    analyse(raw[:at])


def test_only_possible_bounces_need_their_body() -> None:
    def head(raw: bytes) -> bytes:
        return raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"

    assert needs_body(head(dsn()))
    assert not needs_body(head(reply()))
    assert needs_body(b"From: postmaster@mx.example\r\n\r\n")
