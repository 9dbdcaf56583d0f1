"""The SMTP submission service (B12), driven by real SMTP clients: Python's smtplib
(STARTTLS and implicit TLS) and swaks, over TLS with a throwaway CA (trustme).

The whole app runs (worker included) on SQLite and PostgreSQL; the recipients' mail
server is an aiosmtpd sink. What the sink receives is compared byte for byte with
what the client submitted.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import smtplib
import ssl
from collections.abc import Callable, Coroutine
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
import trustme
from sqlalchemy import select

from mailbeacon.core.limits import MAX_RECIPIENTS
from mailbeacon.core.submitted import MAX_SUBMISSION_BYTES
from mailbeacon.mail.submission import MAX_FAILURES
from mailbeacon.settings import ConfigError, load_settings
from mailbeacon.store.app_passwords import create_app_password
from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.tables import AppPassword, User
from tests.conftest import LiveApp, SmtpRecorder
from tests.helpers import click_urls, delivered, free_port, pixel_url
from tests.web_helpers import sign_in

ATTACHMENT = bytes(range(256)) * 200 + b"%PDF-1.7 end"
LOGO = b"\x89PNG\r\n\x1a\n" + bytes(reversed(range(256))) * 16
HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_files(ca: trustme.CA, tmp_path: Path) -> tuple[Path, Path, Path]:
    """(certificate chain, key, CA) for a server named localhost and 127.0.0.1."""
    cert = ca.issue_cert("localhost", HOST)
    chain, key, authority = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(chain)  # key first, then the chain
    cert.private_key_pem.write_to_path(key)
    ca.cert_pem.write_to_path(authority)
    return chain, key, authority


class Service:
    """The app with its submission service, a user and an app password."""

    def __init__(self, live: LiveApp, port: int, tls_port: int, ca_file: Path) -> None:
        self.live = live
        self.port = port
        self.tls_port = tls_port
        self.ca_file = ca_file
        self.password = ""

    @property
    def email(self) -> str:
        return self.live.email

    def context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def starttls(self) -> smtplib.SMTP:
        smtp = smtplib.SMTP(HOST, self.port, timeout=10)
        smtp.starttls(context=self.context())
        smtp.ehlo()
        return smtp

    def implicit(self) -> smtplib.SMTP_SSL:
        return smtplib.SMTP_SSL(HOST, self.tls_port, timeout=10, context=self.context())

    async def detail(self, reply: bytes) -> dict[str, Any]:
        message_id = int(reply.split(b"Queued as ", 1)[1].split(b":", 1)[0])
        result: dict[str, Any] = await delivered(
            self.live.client, message_id, self.live.auth(), timeout=30
        )
        return result


async def new_app_password(live: LiveApp, user_id: int | None = None) -> str:
    engine = make_engine(live.settings.effective_database_url)
    try:
        async with sessions(engine)() as db, db.begin():
            return await create_app_password(db, user_id or live.user_id, "Thunderbird")
    finally:
        await engine.dispose()


@pytest.fixture
async def service(
    serve_app: Callable[..., Coroutine[Any, Any, LiveApp]],
    database_url: str,
    smtp_server: SmtpRecorder,
    tls_files: tuple[Path, Path, Path],
) -> Service:
    chain, key, authority = tls_files
    port, tls_port = free_port(), free_port()
    live = await serve_app(
        database_url,
        smtp_url=smtp_server.url,
        submission_port=port,
        submission_tls_port=tls_port,
        submission_host=HOST,
        submission_cert=chain,
        submission_key=key,
        submission_server_name="localhost",
    )
    found = Service(live, port, tls_port, authority)
    found.password = await new_app_password(live)
    return found


def client_message(sender: str, **headers: str) -> EmailMessage:
    """What Thunderbird sends: text and HTML (with an inline image) and a PDF attachment."""
    message = EmailMessage()
    message["From"] = f"Owner Person <{sender}>"
    message["To"] = "Bob Buyer <bob@example.org>"
    message["Cc"] = "carol@example.net"
    message["Subject"] = "Our offer"
    message["Message-ID"] = "<thunderbird-1@example.com>"
    message["Date"] = "Sun, 29 Nov 2026 11:00:00 +0100"
    message["User-Agent"] = "Mozilla Thunderbird"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    # A line starting with a dot: stuffed by the client, unstuffed by us, stuffed again.
    message.set_content("Prices: https://example.com/prices\n.signature line\n")
    message.add_alternative(
        '<html><body><p>See <a href="https://example.com/prices">our prices</a>.</p>'
        '<img src="cid:logo@thunderbird"></body></html>\n',
        subtype="html",
    )
    message.get_payload()[1].add_related(LOGO, "image", "png", cid="<logo@thunderbird>")
    message.add_attachment(ATTACHMENT, maintype="application", subtype="pdf", filename="o.pdf")
    return message


def submit(smtp: smtplib.SMTP, sender: str, recipients: list[str], raw: bytes) -> bytes:
    """MAIL, RCPT, DATA by hand, to read the reply to DATA (it names the message)."""
    code, reply = smtp.mail(sender)
    assert code == 250, reply
    for address in recipients:
        code, reply = smtp.rcpt(address)
        assert code == 250, reply
    code, reply = smtp.data(raw)
    assert code == 250, reply
    return reply


def parts(raw: bytes) -> dict[str, bytes]:
    parsed = message_from_bytes(raw, policy=default_policy)
    return {
        part.get_content_type(): part.get_payload(decode=True)
        for part in parsed.walk()
        if not part.is_multipart()
    }


async def test_starttls_submission_reaches_each_envelope_recipient_tracked_attachments_intact(
    service: Service, smtp_server: SmtpRecorder
) -> None:
    raw = client_message(service.email).as_bytes(policy=SMTP)
    everyone = ["bob@example.org", "carol@example.net", "dave@example.com"]

    def send() -> bytes:
        with service.starttls() as smtp:
            smtp.login(service.email, service.password)
            return submit(smtp, service.email, everyone, raw)

    detail = await service.detail(await asyncio.to_thread(send))

    assert detail["status"] == "sent"
    fields = {r["address"]: r["field"] for r in detail["recipients"]}
    assert fields == {"bob@example.org": "to", "carol@example.net": "cc", "dave@example.com": "bcc"}
    assert detail["track_opens"] and detail["track_links"]
    pixels = set()
    for address in everyone:
        mail = smtp_server.to(address)
        assert mail.envelope_to == [address]
        copy = parts(mail.raw)
        assert copy["application/pdf"] == ATTACHMENT  # byte-identical
        assert copy["image/png"] == LOGO
        html = copy["text/html"].decode()
        assert 'src="cid:logo@thunderbird"' in html
        pixels.add(pixel_url(html))
        assert len(click_urls(html)) == 1 and len(click_urls(copy["text/plain"].decode())) == 1
        head = mail.raw.split(b"\r\n\r\n", 1)[0]
        assert b"dave@example.com" not in head  # Bcc never shown
        assert b"Message-ID: <thunderbird-1@example.com>" in head
        assert b"User-Agent: Mozilla Thunderbird" in head
    assert len(pixels) == 3  # one pixel per recipient (B1)
    # The message page shows it like any other, untracked body included.
    browser = await sign_in(service.live, service.email)
    page = await browser.get(f"/mail/{detail['id']}")
    assert page.status_code == 200 and "Our offer" in page.text
    await browser.aclose()


async def test_implicit_tls_with_track_none_sends_untracked_without_the_header(
    service: Service, smtp_server: SmtpRecorder
) -> None:
    raw = client_message(service.email, X_MailBeacon_Track="none").as_bytes(policy=SMTP)

    def send() -> bytes:
        with service.implicit() as smtp:
            smtp.login(service.email, service.password)
            return submit(smtp, service.email, ["bob@example.org"], raw)

    detail = await service.detail(await asyncio.to_thread(send))

    assert not detail["track_opens"] and not detail["track_links"]
    async with service.live.runtime.engine.connect() as conn:
        toggles = (
            await conn.execute(
                select(User.last_track_opens, User.last_track_links).where(
                    User.id == service.live.user_id
                )
            )
        ).one()
    assert tuple(toggles) == (True, True)  # the composer's defaults (S6) are not the header's
    mail = smtp_server.to("bob@example.org")
    assert b"X-MailBeacon-Track" not in mail.raw
    copy = parts(mail.raw)
    assert "/o/" not in copy["text/html"].decode()
    assert 'href="https://example.com/prices"' in copy["text/html"].decode()
    assert copy["text/plain"].decode().endswith("\r\n.signature line\r\n")
    # Apart from the one header, the recipient gets the submitted bytes.
    assert mail.raw.rstrip(b"\r\n") == raw.replace(b"X-MailBeacon-Track: none\r\n", b"").rstrip(
        b"\r\n"
    )


async def test_swaks_submits_over_starttls_with_auth_login(
    service: Service, smtp_server: SmtpRecorder, tmp_path: Path
) -> None:
    if shutil.which("swaks") is None:  # Debian's swaks: `make mailbox-deps` installs it
        if os.environ.get("CI") == "true":
            pytest.fail("swaks is required under CI")
        pytest.skip("swaks is not installed (make mailbox-deps)")
    raw = client_message(service.email, X_MailBeacon_Track="links").as_bytes(policy=SMTP)
    # --no-data-fixup sends the file byte for byte: CRLF already; we stuff the dots.
    data = tmp_path / "message.eml"
    data.write_bytes(raw.replace(b"\r\n.", b"\r\n..") + b".\r\n")
    process = await asyncio.create_subprocess_exec(
        "swaks",
        "--server",
        HOST,
        "--port",
        str(service.port),
        "--tls",
        "--tls-verify",
        "--tls-ca-path",
        str(service.ca_file),
        "--auth",
        "LOGIN",
        "--auth-user",
        service.email,
        "--auth-password",
        service.password,
        "--from",
        service.email,
        "--to",
        "bob@example.org,erin@example.com",
        "--data",
        str(data),
        "--no-data-fixup",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()
    reply = next(line for line in output.splitlines() if b"Queued as" in line)
    detail = await service.detail(reply.split(b"<~ ", 1)[1])

    assert not detail["track_opens"] and detail["track_links"]
    for address in ("bob@example.org", "erin@example.com"):
        copy = parts(smtp_server.to(address).raw)
        assert copy["application/pdf"] == ATTACHMENT
        assert "/o/" not in copy["text/html"].decode()
        assert len(click_urls(copy["text/html"].decode())) == 1


async def test_a_wrong_or_revoked_app_password_is_refused(service: Service) -> None:
    def attempt(password: str) -> int:
        with service.starttls() as smtp:
            try:
                smtp.login(service.email, password)
            except smtplib.SMTPAuthenticationError as exc:
                return exc.smtp_code
            return 235

    assert await asyncio.to_thread(attempt, "abcd-efgh-ijkm-npqr") == 535
    assert await asyncio.to_thread(attempt, "a long password") == 535  # the sign-in password
    # Case, spaces and dashes do not matter to the right one.
    typed = service.password.upper().replace("-", " ")
    assert await asyncio.to_thread(attempt, typed) == 235


async def test_auth_is_neither_offered_nor_accepted_in_plaintext(service: Service) -> None:
    credentials = base64.b64encode(f"\0{service.email}\0{service.password}".encode()).decode()

    def attempt() -> tuple[bool, int, int]:
        with smtplib.SMTP(HOST, service.port, timeout=10) as smtp:
            smtp.ehlo()
            offered = smtp.has_extn("auth")
            code, _ = smtp.docmd("AUTH", f"PLAIN {credentials}")
            mail_code, _ = smtp.mail(service.email)
            return offered, code, mail_code

    offered, code, mail_code = await asyncio.to_thread(attempt)
    assert not offered
    assert code == 530  # STARTTLS first
    assert mail_code == 530


async def test_an_unauthenticated_client_cannot_relay(
    service: Service, smtp_server: SmtpRecorder
) -> None:
    def attempt() -> tuple[int, int, int]:
        with service.starttls() as smtp:
            mail_code, _ = smtp.mail(service.email)
            rcpt_code, _ = smtp.rcpt("victim@example.org")
            data_code, _ = smtp.docmd("DATA")
            return mail_code, rcpt_code, data_code

    assert await asyncio.to_thread(attempt) == (530, 530, 530)
    response = await service.live.client.get("/api/v1/messages", headers=service.live.auth())
    assert response.json()["items"] == []
    assert smtp_server.mails == []


async def test_a_signed_message_passes_untouched_and_untracked_with_the_reason(
    service: Service, smtp_server: SmtpRecorder
) -> None:
    signed = (
        f"From: {service.email}\r\nTo: bob@example.org\r\nSubject: signed\r\n"
        "Message-ID: <signed-1@example.com>\r\nDate: Sun, 29 Nov 2026 11:00:00 +0100\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; '
        'micalg=sha-256; boundary="sig"\r\n\r\n'
        "--sig\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        '<p><a href="https://example.com/signed">signed</a></p>\r\n'
        "--sig\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHAqCAMIACAQEx\r\n--sig--\r\n"
    ).encode()

    def send() -> bytes:
        with service.starttls() as smtp:
            smtp.login(service.email, service.password)
            return submit(smtp, service.email, ["bob@example.org"], signed)

    detail = await service.detail(await asyncio.to_thread(send))

    assert not detail["track_opens"] and not detail["track_links"]
    assert "signed_or_encrypted" in [reason["code"] for reason in detail["untracked"]]
    assert smtp_server.to("bob@example.org").raw == signed


async def test_the_from_address_must_be_the_signed_in_users(service: Service) -> None:
    raw = client_message("someone.else@example.com").as_bytes(policy=SMTP)

    def send() -> int:
        with service.starttls() as smtp:
            smtp.login(service.email, service.password)
            smtp.mail(service.email)
            smtp.rcpt("bob@example.org")
            code, _ = smtp.data(raw)
            return code

    assert await asyncio.to_thread(send) == 553


# --- the Mail clients settings page ----------------------------------------------------------

NEW_PASSWORD = re.compile(r'id="new-password" class="token-value" value="([a-z2-9-]+)"')


async def test_the_mail_clients_page_creates_shows_once_and_revokes_app_passwords(
    service: Service,
) -> None:
    live = service.live
    browser = await sign_in(live, live.email)
    page = await browser.get("/settings/mail-clients")
    assert page.status_code == 200
    # The exact values to type into a mail client.
    assert "<code>localhost</code>" in page.text
    assert f"<code>{service.port}</code>" in page.text and "<code>STARTTLS</code>" in page.text
    assert f"<code>{service.tls_port}</code>" in page.text and "<code>SSL/TLS</code>" in page.text
    assert f"<code>{live.email}</code>" in page.text
    assert 'href="/settings/mail-clients" aria-current="page">Mail clients</a>' in page.text

    assert (await browser.post("/settings/mail-clients", {"name": " "})).status_code == 400
    created = await browser.post("/settings/mail-clients", {"name": "Outlook"})
    assert created.status_code == 200
    assert created.headers["cache-control"] == "no-store"
    found = NEW_PASSWORD.search(created.text)
    assert found
    password = found.group(1)
    listing = await browser.get("/settings/mail-clients")
    assert password not in listing.text
    assert f"<code>{password[:4]}-…</code>" in listing.text and "Outlook" in listing.text

    def login(secret: str) -> int:
        with service.starttls() as smtp:
            try:
                return smtp.login(live.email, secret)[0]
            except smtplib.SMTPAuthenticationError as exc:
                return exc.smtp_code

    assert await asyncio.to_thread(login, password) == 235
    async with live.runtime.engine.connect() as conn:
        row_id = await conn.scalar(select(AppPassword.id).where(AppPassword.name == "Outlook"))
    revoked = await browser.post(f"/settings/mail-clients/{row_id}/revoke")
    assert revoked.status_code == 303
    assert "The app password is revoked." in (await browser.get(revoked.headers["location"])).text
    assert await asyncio.to_thread(login, password) == 535
    await browser.aclose()


async def test_another_users_app_password_cannot_be_revoked(service: Service) -> None:
    live = service.live
    other_id, _ = await live.add_user("other@example.com")
    await new_app_password(live, other_id)
    browser = await sign_in(live, live.email)
    async with live.runtime.engine.connect() as conn:
        row_id = await conn.scalar(select(AppPassword.id).where(AppPassword.user_id == other_id))
    assert (await browser.post(f"/settings/mail-clients/{row_id}/revoke")).status_code == 404
    assert "other@example.com" not in (await browser.get("/settings/mail-clients")).text
    await browser.aclose()


async def test_the_page_says_when_the_service_is_off(live: LiveApp) -> None:
    browser = await sign_in(live, live.email)
    page = await browser.get("/settings/mail-clients")
    assert "not switched on for this MailBeacon server" in page.text
    await browser.aclose()


# --- limits, throttling and configuration -----------------------------------------------------


async def test_sizes_and_recipient_counts_are_refused_before_the_message_is_read(
    service: Service,
) -> None:
    def attempt() -> tuple[int, list[int]]:
        with service.starttls() as smtp:
            smtp.login(service.email, service.password)
            too_big, _ = smtp.docmd(
                "MAIL", f"FROM:<{service.email}> SIZE={MAX_SUBMISSION_BYTES + 1}"
            )
            smtp.mail(service.email)
            codes = [smtp.rcpt(f"r{n}@example.com")[0] for n in range(MAX_RECIPIENTS + 1)]
            return too_big, codes

    too_big, codes = await asyncio.to_thread(attempt)
    assert too_big == 552
    assert codes[:MAX_RECIPIENTS] == [250] * MAX_RECIPIENTS
    assert codes[MAX_RECIPIENTS] == 452


async def test_repeated_failed_sign_ins_are_refused_for_a_while(service: Service) -> None:
    def attempts() -> list[int]:
        codes = []
        with service.starttls() as smtp:
            for _ in range(MAX_FAILURES):
                codes.append(smtp.docmd("AUTH", _plain(service.email, "wrong-pass-word"))[0])
            codes.append(smtp.docmd("AUTH", _plain(service.email, service.password))[0])
        return codes

    codes = await asyncio.to_thread(attempts)
    assert codes == [535] * MAX_FAILURES + [454]  # even the right password, for now


def _plain(login: str, password: str) -> str:
    return "PLAIN " + base64.b64encode(f"\0{login}\0{password}".encode()).decode()


def test_a_submission_port_without_a_certificate_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MAILBEACON_SUBMISSION_CERT: required"):
        load_settings(var_dir=tmp_path, submission_port=587)
    (tmp_path / "cert.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match="MAILBEACON_SUBMISSION_KEY: no such file"):
        load_settings(
            var_dir=tmp_path,
            submission_tls_port=465,
            submission_cert=tmp_path / "cert.pem",
            submission_key=tmp_path / "missing.pem",
        )
    with pytest.raises(ConfigError, match="not a certificate chain and its private key"):
        load_settings(
            var_dir=tmp_path,
            submission_port=587,
            submission_cert=tmp_path / "cert.pem",
            submission_key=tmp_path / "cert.pem",
        )
