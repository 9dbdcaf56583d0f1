"""IMAP in the mailbox settings (S12, B2): saved with the password encrypted and never shown,
checked like the SMTP form, and "Test connection" says what it found, or what went wrong,
against a real Dovecot."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from mailbeacon.store.db import sessions
from mailbeacon.store.mailboxes import load_mailbox
from mailbeacon.store.tables import Mailbox, User
from tests.conftest import LiveApp
from tests.dovecot import MAIL_PASSWORD, MAIL_USER, DovecotServer
from tests.web_helpers import Browser, sign_in


def imap_form(server: DovecotServer | None = None, **overrides: str) -> dict[str, object]:
    form: dict[str, object] = {
        "imap_host": server.host if server else "imap.example.com",
        "imap_port": str(server.port) if server else "993",
        "imap_security": server.security if server else "tls",
        "imap_username": MAIL_USER,
        "imap_password": MAIL_PASSWORD,
        "sent_folder": "",
        "inbox_folder": "",
    }
    form.update(overrides)
    return form


async def mailbox_row(live: LiveApp) -> Mailbox:
    async with sessions(live.runtime.engine)() as db:
        row = await load_mailbox(db, live.user_id)
    assert row is not None
    return row


@pytest.fixture
async def browser(live: LiveApp) -> Any:
    signed_in = await sign_in(live, live.email)
    saved = await signed_in.post(
        "/settings/mailbox",
        {"host": "127.0.0.1", "port": "2525", "security": "none", "username": "", "password": ""},
    )
    assert saved.status_code == 303
    yield signed_in
    await signed_in.aclose()


async def test_imap_needs_the_smtp_mailbox_first(live: LiveApp) -> None:
    browser = await sign_in(live, live.email)
    try:
        page = await browser.post("/settings/mailbox/imap", imap_form())
        assert page.status_code == 400
        assert "Save your own mail server (SMTP) first." in page.text
    finally:
        await browser.aclose()


async def test_imap_password_is_encrypted_and_never_shown(live: LiveApp, browser: Browser) -> None:
    secret = "imap correct horse battery"
    saved = await browser.post("/settings/mailbox/imap", imap_form(imap_password=secret))
    assert saved.status_code == 303
    row = await mailbox_row(live)
    assert (row.imap_host, row.imap_port, row.imap_security, row.imap_username) == (
        "imap.example.com",
        993,
        "tls",
        MAIL_USER,
    )
    assert secret.encode() not in row.imap_password_encrypted
    assert live.runtime.fernet.decrypt(row.imap_password_encrypted).decode() == secret
    page = await browser.get(saved.headers["location"])
    assert "Your IMAP settings are saved." in page.text
    assert secret not in page.text
    assert 'name="imap_password" value=""' in page.text

    await browser.post("/settings/mailbox/imap", imap_form(imap_password=""))  # kept
    row = await mailbox_row(live)
    assert live.runtime.fernet.decrypt(row.imap_password_encrypted).decode() == secret
    removed = await browser.post("/settings/mailbox/imap/remove")
    assert removed.status_code == 303
    row = await mailbox_row(live)
    assert (row.imap_host, row.imap_password_encrypted) == ("", b"")
    assert row.host == "127.0.0.1"  # the SMTP side stays


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("imap_host", "imap example.com", "imap.example.com, or an IP address"),
        ("imap_port", "99999", "Enter a port number from 1 to 65535."),
        ("imap_security", "ssl3", "Choose none, STARTTLS or TLS."),
        ("sent_folder", "Sent\r\nX", "without line breaks"),
    ],
)
async def test_bad_imap_input_is_refused_and_changes_nothing(
    live: LiveApp, browser: Browser, field: str, value: str, words: str
) -> None:
    response = await browser.post("/settings/mailbox/imap", imap_form(**{field: value}))
    assert response.status_code == 400
    assert words in response.text
    assert f'id="{field}-error"' in response.text
    assert (await mailbox_row(live)).imap_host == ""


async def test_test_connection_shows_what_it_found(
    live: LiveApp, browser: Browser, dovecot: DovecotServer
) -> None:
    await browser.post("/settings/mailbox/imap", imap_form(dovecot, imap_security="none"))
    page = await browser.post("/settings/mailbox/imap/test")
    assert page.status_code == 200
    assert f"Connected to 127.0.0.1:{dovecot.port} and signed in." in page.text
    assert '<dd class="imap-sent">Sent</dd>' in page.text
    assert '<dd class="imap-inbox">INBOX</dd>' in page.text
    assert "Yes: replies are seen within seconds" in page.text
    assert "Yes: the server names its Sent folder" in page.text
    row = await mailbox_row(live)
    assert row.imap_checked_at is not None and row.imap_error == ""


async def test_test_connection_says_a_wrong_password_in_words_that_stay_in_settings(
    live: LiveApp, browser: Browser, dovecot: DovecotServer
) -> None:
    await browser.post(
        "/settings/mailbox/imap", imap_form(dovecot, imap_security="none", imap_password="wrong")
    )
    page = await browser.post("/settings/mailbox/imap/test")
    assert "The IMAP server did not accept the user name and password." in page.text
    assert MAIL_PASSWORD not in page.text
    # The outcome stays in Settings, in the reader's language.
    async with live.runtime.engine.begin() as conn:
        await conn.execute(update(User).where(User.id == live.user_id).values(locale="de"))
    german = await browser.get("/settings/mailbox")
    assert "Der IMAP-Server hat Benutzername und Passwort nicht akzeptiert." in german.text
