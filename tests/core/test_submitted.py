"""A submitted message's copies (B12): only the bodies' links and the pixel change."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP
from email.policy import default as default_policy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbeacon.core.submitted import (
    MAX_PARTS,
    InvalidSubmission,
    TrackOverride,
    read_submission,
    render_submitted,
    sent_copy,
)

ATTACHMENT = bytes(range(256)) * 64
LOGO = b"\x89PNG\r\n\x1a\n" + bytes(range(255, -1, -1)) * 8
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def client_message(**headers: str) -> bytes:
    """What a mail client sends: text + HTML with an inline image, and an attachment."""
    message = EmailMessage()
    message["From"] = "Alice Seller <alice@example.com>"
    message["To"] = "Bob <bob@example.org>"
    message["Cc"] = "carol@example.net"
    message["Bcc"] = "dave@example.com"
    message["Subject"] = "Prices, ünïcode"
    message["Message-ID"] = "<client-made@example.com>"
    message["Date"] = "Sun, 29 Nov 2026 11:00:00 +0100"
    message["User-Agent"] = "Thunderbird/140.0"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Prices: https://example.com/prices\n")
    message.add_alternative(
        '<html><body><p>See <a href="https://example.com/prices">prices</a>'
        '<img src="cid:logo@x"></p></body></html>\n',
        subtype="html",
    )
    html_part = message.get_payload()[1]
    html_part.add_related(LOGO, "image", "png", cid="<logo@x>")
    message.add_attachment(ATTACHMENT, maintype="application", subtype="pdf", filename="offer.pdf")
    return message.as_bytes(policy=SMTP)


def render(raw: bytes, *, pixel: str | None = "https://t.example/o/PIXEL.gif") -> bytes:
    return render_submitted(
        raw,
        pixel_url=pixel,
        click_url_for=lambda url: f"https://t.example/c/{len(url)}",
        message_id="<ours@example.com>",
        date=NOW,
    )


def leaves(raw: bytes) -> list[tuple[str, bytes]]:
    parsed = message_from_bytes(raw, policy=default_policy)
    return [
        (part.get_content_type(), part.get_payload(decode=True))
        for part in parsed.walk()
        if not part.is_multipart()
    ]


def test_attachments_and_inline_images_are_byte_identical_in_the_copy() -> None:
    raw = client_message()
    copy = render(raw)
    original = dict(leaves(raw))
    rendered = dict(leaves(copy))
    assert rendered["application/pdf"] == original["application/pdf"] == ATTACHMENT
    assert rendered["image/png"] == original["image/png"] == LOGO
    # Not only the decoded bytes: the encoded part as the client wrote it.
    encoded = base64.encodebytes(ATTACHMENT)[:200].replace(b"\n", b"\r\n")
    assert encoded in raw and encoded in copy


def test_the_copy_has_the_pixel_once_and_tracked_links_in_both_bodies() -> None:
    copy = render(client_message())
    bodies = dict(leaves(copy))
    html = bodies["text/html"].decode()
    text = bodies["text/plain"].decode()
    assert html.count("https://t.example/o/PIXEL.gif") == 1
    assert 'href="https://t.example/c/26"' in html
    assert 'src="cid:logo@x"' in html
    assert "https://t.example/c/26" in text
    assert "https://example.com/prices" not in html + text


def test_bcc_and_the_track_header_are_removed_and_every_other_header_kept() -> None:
    raw = client_message(X_MailBeacon_Track="none")
    copy = render(raw)
    head = copy.split(b"\r\n\r\n", 1)[0]
    assert b"Bcc:" not in head
    assert b"dave@example.com" not in copy
    assert b"X-MailBeacon-Track" not in head
    original_head = raw.split(b"\r\n\r\n", 1)[0]
    kept = [
        line
        for line in original_head.split(b"\r\n")
        if not line.startswith((b"Bcc:", b"X-MailBeacon-Track:"))
    ]
    assert head.split(b"\r\n") == kept  # same headers, same order, same bytes


def test_a_missing_message_id_and_date_are_added() -> None:
    raw = b"From: alice@example.com\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nhello\r\n"
    copy = render(raw)
    assert copy.startswith(b"Message-ID: <ours@example.com>\r\nDate: Sun, 29 Nov 2026 12:00:00")
    assert copy.endswith(b"Subject: hi\r\n\r\nhello\r\n")


def test_a_signed_message_passes_untouched() -> None:
    signed = (
        b"From: alice@example.com\r\nTo: bob@example.org\r\nBcc: dave@example.com\r\n"
        b"Subject: signed\r\nMessage-ID: <s@example.com>\r\n"
        b"Date: Sun, 29 Nov 2026 11:00:00 +0100\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/signed; protocol="application/pkcs7-signature";'
        b' micalg=sha-256; boundary="sig"\r\n\r\n'
        b"--sig\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b'<a href="https://example.com/x">x</a>\r\n'
        b"--sig\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHAqCAMIACAQEx\r\n--sig--\r\n"
    )
    read = read_submission(signed)
    assert read.sealed
    copy = render(signed)
    assert copy == signed.replace(b"Bcc: dave@example.com\r\n", b"")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("opens,links", TrackOverride(True, True)),
        ("links", TrackOverride(False, True)),
        (" Opens ", TrackOverride(True, False)),
        ("none", TrackOverride(False, False)),
    ],
)
def test_the_track_header_overrides_the_defaults(value: str, expected: TrackOverride) -> None:
    read = read_submission(client_message(X_MailBeacon_Track=value))
    assert read.override == expected
    assert not read.override_invalid


def test_an_unreadable_track_header_is_reported_not_guessed() -> None:
    read = read_submission(client_message(X_MailBeacon_Track="everything"))
    assert read.override is None and read.override_invalid


def test_reading_finds_recipients_subject_bodies_and_message_id() -> None:
    read = read_submission(client_message())
    assert read.from_header == ("Alice Seller", "alice@example.com")
    assert read.to == (("Bob", "bob@example.org"),)
    assert read.cc == (("", "carol@example.net"),)
    assert read.subject == "Prices, ünïcode"
    assert read.message_id == "<client-made@example.com>"
    assert read.html is not None and "cid:logo@x" in read.html
    assert read.text == "Prices: https://example.com/prices\n"
    assert [kind for kind, _ in read.bodies] == ["text", "html"]


def test_a_boundary_inside_a_line_is_text_not_a_delimiter() -> None:
    raw = (
        b"From: a@example.com\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee --b here https://example.com/y\r\n"
        b"--b--\r\n"
    )
    copy = render(raw)
    assert b"see --b here https://t.example/c/21\r\n--b--" in copy


def test_a_base64_html_body_is_rewritten_and_stays_base64() -> None:
    html = '<html><body><a href="https://example.com/b64">x</a></body></html>'
    raw = (
        b"From: a@example.com\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(html.encode()).replace(b"\n", b"\r\n")
    )
    copy = render(raw)
    body = copy.split(b"\r\n\r\n", 1)[1]
    assert re.fullmatch(rb"[A-Za-z0-9+/=\r\n]+", body)
    decoded = base64.b64decode(body).decode()
    assert 'href="https://t.example/c/23"' in decoded and "PIXEL.gif" in decoded


def test_too_many_parts_is_refused() -> None:
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(MAX_PARTS + 1))
    raw = b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + parts + b"--b--\r\n"
    with pytest.raises(InvalidSubmission):
        read_submission(raw)


@given(
    attachment=st.binary(max_size=3000),
    words=st.lists(st.sampled_from(["see", "https://example.com/a", "--b", ".", "ü", "\n"])),
)
def test_any_attachment_survives_and_only_links_change(attachment: bytes, words: list[str]) -> None:
    message = EmailMessage()
    message["From"] = "a@example.com"
    message["Message-ID"] = "<p@example.com>"
    message["Date"] = "Sun, 29 Nov 2026 11:00:00 +0100"
    body = " ".join(words)
    message.set_content(body)
    message.add_alternative(f"<p>{body}</p>", subtype="html")
    message.add_attachment(attachment, maintype="application", subtype="octet-stream")
    raw = message.as_bytes(policy=SMTP)
    copy = render(raw, pixel=None)
    assert copy.split(b"\r\n\r\n", 1)[0] == raw.split(b"\r\n\r\n", 1)[0]
    original, rendered = leaves(raw), leaves(copy)
    assert [kind for kind, _ in rendered] == [kind for kind, _ in original]
    for (_, before), (_, after) in zip(original, rendered, strict=True):
        assert after.replace(b"https://t.example/c/21", b"https://example.com/a") == before


@pytest.mark.parametrize("multipart", [False, True])
def test_a_line_that_tracking_makes_too_long_turns_the_body_quoted_printable(
    multipart: bool,
) -> None:
    links = " ".join(f'<a href="https://example.com/{n}">{n}</a>' for n in range(20))
    assert len(links) < 998
    tracked = "https://t.example/c/" + "x" * 60
    part = b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
    if multipart:
        raw = (
            b'From: a@example.com\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
            b"--b\r\n" + part + links.encode() + b"\r\n--b--\r\n"
        )
    else:
        raw = b"From: a@example.com\r\n" + part + links.encode() + b"\r\n"
    copy = render_submitted(
        raw,
        pixel_url=None,
        click_url_for=lambda url: tracked,
        message_id="<m@example.com>",
        date=NOW,
    )
    assert max(len(line) for line in copy.split(b"\r\n")) <= 998
    assert copy.count(b"Content-Transfer-Encoding") == 1
    assert b"Content-Transfer-Encoding: quoted-printable" in copy
    html = dict(leaves(copy))["text/html"].decode()
    assert html.strip() == re.sub(r"https://example\.com/\d+", tracked, links)


def test_the_sent_folder_copy_keeps_bcc_and_drops_only_our_header() -> None:
    raw = client_message(X_MailBeacon_Track="links")
    copy = sent_copy(raw, message_id="<ours@example.com>", date=NOW)
    assert copy == raw.replace(b"X-MailBeacon-Track: links\r\n", b"")
    assert b"Bcc: dave@example.com" in copy
