"""Pure parts of the composer (B13, #9 bug 4): IDN addresses, every address problem,
safe attachment names and types, placeholders."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import SMTP, default

from hypothesis import given
from hypothesis import strategies as st

from mailbeacon.core.addresses import Mailbox, mailbox_problems, parse_mailbox
from mailbeacon.core.limits import MAX_FILENAME_CHARS
from mailbeacon.core.mime import FileAttachment, build_copy, safe_content_type, safe_filename
from mailbeacon.core.placeholders import fill, values_for


def test_idn_domain_is_kept_in_its_ascii_form() -> None:
    assert parse_mailbox("Anna <anna@exämple.com>") == Mailbox("anna@xn--exmple-cua.com", "Anna")
    assert parse_mailbox("anna@example.com").address == "anna@example.com"


def test_every_problem_of_a_field_is_reported() -> None:
    problems = mailbox_problems("ok@example.com, bad, worse@, fine@example.com")
    assert [p.value for p in problems] == ["bad", "worse@"]
    assert mailbox_problems(["a@example.com", "b@example.com"]) == []
    too_many = mailbox_problems(", ".join(f"a{n}@example.com" for n in range(101)))
    assert [p.code for p in too_many] == ["too_many_addresses"]


def test_filenames_lose_paths_controls_and_leading_dots() -> None:
    assert safe_filename("C:\\Users\\eva\\offer.pdf") == "offer.pdf"
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("..hidden") == "hidden"
    assert safe_filename("a\r\nContent-Type: x.txt") == "a Content-Type x.txt"
    assert safe_filename("") == "attachment"
    long = safe_filename("x" * 500 + ".pdf")
    assert len(long) <= MAX_FILENAME_CHARS and long.endswith(".pdf")


@given(st.text(max_size=300))
def test_any_filename_is_safe(name: str) -> None:
    clean = safe_filename(name)
    assert clean and len(clean) <= MAX_FILENAME_CHARS
    assert not any(c in clean for c in '/\\\r\n\x00<>:"|?*')


def test_content_types_are_plain_or_octet_stream() -> None:
    assert safe_content_type("Application/PDF") == "application/pdf"
    assert safe_content_type("text/plain; charset=x") == "application/octet-stream"
    assert safe_content_type("text/plain\r\nX-Evil: 1") == "application/octet-stream"


def test_copy_with_attachment_keeps_the_bytes_and_a_non_ascii_name() -> None:
    data = bytes(range(256)) * 100
    copy = build_copy(
        sender=Mailbox("eva@example.com"),
        to=(Mailbox("anna@example.com"),),
        cc=(),
        subject="Offer",
        html="<p>Hi</p>",
        text="Hi",
        message_id="<1@example.com>",
        date=datetime(2026, 11, 29, tzinfo=UTC),
        attachments=(FileAttachment("Offert Å.pdf", "application/pdf", data),),
    )
    raw = copy.as_bytes(policy=SMTP)
    assert b"filename*" in raw  # RFC 2231
    parsed = message_from_bytes(raw, policy=default)
    [part] = list(parsed.iter_attachments())  # type: ignore[attr-defined]
    assert part.get_filename() == "Offert Å.pdf" and part.get_content() == data
    assert parsed.get_body(preferencelist=("html",)) is not None  # type: ignore[attr-defined]


def test_placeholders_are_filled_and_escaped_in_html() -> None:
    values = values_for("bob@example.com", "<b>Bob</b>  Lee")
    assert fill("Hi {{first_name}}, {{ email }} {{unknown}}", values) == (
        "Hi <b>Bob</b>, bob@example.com {{unknown}}"
    )
    assert fill("<p>{{name}}</p>", values, as_html=True) == "<p>&lt;b&gt;Bob&lt;/b&gt; Lee</p>"
    assert fill("Hi {{first_name}}", values_for("x@example.com", "")) == "Hi "
