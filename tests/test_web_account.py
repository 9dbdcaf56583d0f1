"""The settings pages over real HTTP, on SQLite and PostgreSQL: the account switches (S4)
taking effect, language and time zone (B8), the user's own mailbox with a real test
email, password change, API tokens (B9) and the admin-only user list."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select, update

from mailbeacon.store.tables import ApiToken, Mailbox, User, WebSession
from tests.conftest import LiveApp, SmtpRecorder
from tests.test_web_auth import SESSION, is_signed_in, runtime_of
from tests.web_helpers import PASSWORD, Browser, client_for, login_token, sign_in

TOKEN = re.compile(r'value="(mbk_[A-Za-z0-9_-]+)"')
ServeApp = Callable[..., Awaitable[LiveApp]]


async def user_row(live: LiveApp, user_id: int) -> Any:
    async with runtime_of(live).engine.connect() as conn:
        return (await conn.execute(select(User).where(User.id == user_id))).one()


async def mailbox_row(live: LiveApp, user_id: int) -> Any:
    async with runtime_of(live).engine.connect() as conn:
        result = await conn.execute(select(Mailbox).where(Mailbox.user_id == user_id))
        return result.one_or_none()


async def make_admin(live: LiveApp, user_id: int) -> None:
    async with runtime_of(live).engine.begin() as conn:
        await conn.execute(update(User).where(User.id == user_id).values(is_admin=True))


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def general_form(**changes: str) -> dict[str, object]:
    form: dict[str, object] = {
        "display_name": "Anna Berg",
        "language": "en",
        "timezone": "UTC",
        "open_tracking": "1",
        "link_tracking": "1",
        "notify_tracking": "1",
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v != ""}


def mailbox_form(**changes: str) -> dict[str, object]:
    form: dict[str, object] = {
        "host": "127.0.0.1",
        "port": "25",
        "security": "none",
        "username": "",
        "password": "",
    }
    form.update(changes)
    return form


async def test_settings_page_shows_switches_languages_and_zones(live: LiveApp) -> None:
    browser = await sign_in(live, live.email)
    page = await browser.get("/settings")
    assert page.status_code == 200
    for name in ("open_tracking", "link_tracking", "notify_tracking"):
        assert re.search(rf'name="{name}" value="1"[^>]* checked', page.text), name
    assert "Plain-text email cannot be open-tracked" in page.text
    for code, name in (("de", "Deutsch"), ("sv", "Svenska"), ("pl", "Polski"), ("et", "Eesti")):
        assert f'value="{code}" lang="{code}"' in page.text and name in page.text
    assert "<option selected>UTC</option>" in page.text
    assert "<option>Europe/Tallinn</option>" in page.text
    assert 'aria-current="page">General' in page.text
    assert 'href="/settings/users"' not in page.text  # not an admin
    await browser.aclose()


async def test_switches_save_and_take_effect(live: LiveApp) -> None:
    """S4: with open tracking switched off, even an explicit toggle does not track opens."""
    browser = await sign_in(live, live.email)
    saved = await browser.post("/settings", general_form(open_tracking="", notify_tracking=""))
    assert saved.status_code == 303
    assert saved.headers["location"] == "/settings?done=saved"
    page = await browser.get(saved.headers["location"])
    assert "Your settings are saved." in page.text
    assert not re.search(r'name="open_tracking" value="1"[^>]* checked', page.text)
    assert re.search(r'name="link_tracking" value="1"[^>]* checked', page.text)
    row = await user_row(live, live.user_id)
    assert (row.open_tracking, row.link_tracking, row.notify_tracking) == (False, True, False)
    assert row.display_name == "Anna Berg"

    sent = await live.client.post(
        "/api/v1/messages",
        headers=live.auth(),
        json={
            "to": ["reader@example.com"],
            "subject": "Hello",
            "html": '<p>See <a href="https://example.com/offer">the offer</a></p>',
            "track_opens": True,
            "track_links": True,
        },
    )
    assert sent.status_code == 201, sent.text
    body = sent.json()
    assert body["track_opens"] is False
    assert body["track_links"] is True
    assert "opens_switch_off" in [reason["code"] for reason in body["untracked"]]
    await browser.aclose()


async def test_language_and_time_zone_change_the_pages(live: LiveApp) -> None:
    browser = await sign_in(live, live.email)
    saved = await browser.post("/settings", general_form(language="de", timezone="Europe/Berlin"))
    assert saved.status_code == 303
    page = await browser.get("/settings")
    assert '<html lang="de">' in page.text
    assert "<option selected>Europe/Berlin</option>" in page.text
    assert re.search(r'<option value="de" lang="de" selected>Deutsch</option>', page.text)
    row = await user_row(live, live.user_id)
    assert (row.locale, row.timezone) == ("de", "Europe/Berlin")
    await browser.aclose()


async def test_bad_settings_are_refused_and_nothing_changes(live: LiveApp) -> None:
    browser = await sign_in(live, live.email)
    before = await user_row(live, live.user_id)
    cases = [
        (general_form(timezone="Mars/Olympus_Mons", open_tracking=""), "Choose a time zone"),
        (general_form(timezone="localtime"), "Choose a time zone"),
        (general_form(language="xx", link_tracking=""), "Choose one of the languages"),
        (general_form(language=""), "Choose one of the languages"),
        (general_form(display_name="Anna\r\nBcc: all@example.com"), "line breaks"),
        (general_form(display_name="A" * 201), "at most 200"),
    ]
    for form, message in cases:
        response = await browser.post("/settings", form)
        assert response.status_code == 400, form
        assert message in response.text
        assert "Nothing was changed" in response.text
        assert 'aria-invalid="true"' in response.text
    after = await user_row(live, live.user_id)
    assert after == before

    forged = await browser.client.post("/settings", data=general_form(open_tracking=""))
    assert forged.status_code == 403
    assert (await user_row(live, live.user_id)).open_tracking is True
    await browser.aclose()


async def test_markup_in_names_is_shown_as_text(live: LiveApp) -> None:
    browser = await sign_in(live, live.email)
    markup = '<img src=x onerror="alert(1)">'
    assert (await browser.post("/settings", general_form(display_name=markup))).status_code == 303
    token_page = await browser.post("/settings/tokens", {"name": markup})
    assert token_page.status_code == 200
    for page in (await browser.get("/settings"), await browser.get("/settings/tokens")):
        assert markup not in page.text
        assert "&lt;img src=x onerror=" in page.text
    await browser.aclose()


async def test_mailbox_password_is_encrypted_and_never_shown(live: LiveApp) -> None:
    runtime = runtime_of(live)
    browser = await sign_in(live, live.email)
    empty = await browser.get("/settings/mailbox")
    assert "default mail server, 127.0.0.1" in empty.text
    assert "Remove mailbox" not in empty.text

    secret = "correct horse battery staple"
    saved = await browser.post(
        "/settings/mailbox",
        mailbox_form(host="smtp.example.com", port="587", security="starttls",
                     username="anna@example.com", password=secret),
    )  # fmt: skip
    assert saved.status_code == 303
    row = await mailbox_row(live, live.user_id)
    assert (row.host, row.port, row.security, row.username) == (
        "smtp.example.com",
        587,
        "starttls",
        "anna@example.com",
    )
    assert secret.encode() not in row.password_encrypted
    assert runtime.fernet.decrypt(row.password_encrypted).decode() == secret

    page = await browser.get(saved.headers["location"])
    assert "Your mailbox is saved." in page.text
    assert secret not in page.text
    assert "A password is stored; leave this empty to keep it." in page.text
    assert "smtp.example.com:587" in page.text
    assert 'name="password" value=""' in page.text

    # Saving again without a password keeps it; "forget" clears it.
    resaved = await browser.post("/settings/mailbox", mailbox_form(host="smtp2.example.com"))
    assert resaved.status_code == 303
    row = await mailbox_row(live, live.user_id)
    assert row.host == "smtp2.example.com"
    assert runtime.fernet.decrypt(row.password_encrypted).decode() == secret
    await browser.post("/settings/mailbox", mailbox_form(clear_password="1", password="new"))
    assert (await mailbox_row(live, live.user_id)).password_encrypted == b""
    await browser.aclose()


async def test_mailbox_input_is_checked(live: LiveApp) -> None:
    browser = await sign_in(live, live.email)
    cases = [
        (mailbox_form(host="smtp example.com"), "without spaces"),
        (mailbox_form(host="smtp.example.com\r\nRCPT TO:x"), "without spaces"),
        (mailbox_form(host=""), "Enter a host name"),
        (mailbox_form(host="-bad-.example"), "Enter a host name"),
        (mailbox_form(port="0"), "from 1 to 65535"),
        (mailbox_form(port="65536"), "from 1 to 65535"),
        (mailbox_form(port="25x"), "from 1 to 65535"),
        (mailbox_form(security="ssl"), "Choose none, STARTTLS or TLS"),
        (mailbox_form(username="a\nb"), "without line breaks"),
    ]
    for form, message in cases:
        response = await browser.post("/settings/mailbox", {**form, "password": "typed secret"})
        assert response.status_code == 400, form
        assert message in response.text, form
        assert "typed secret" not in response.text
    assert await mailbox_row(live, live.user_id) is None
    for host, stored in (
        ("mail.example.com", "mail.example.com"),
        (" 10.0.0.5 ", "10.0.0.5"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("localhost", "localhost"),
    ):
        ok = await browser.post("/settings/mailbox", mailbox_form(host=host))
        assert ok.status_code == 303, host
        assert (await mailbox_row(live, live.user_id)).host == stored
    await browser.aclose()


async def test_test_email_goes_through_the_users_mailbox(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    browser = await sign_in(live, live.email)
    await browser.post("/settings", general_form(display_name="Anna Berg"))
    saved = await browser.post("/settings/mailbox", mailbox_form(port=str(smtp_server.port)))
    assert saved.status_code == 303
    page = await browser.post("/settings/mailbox/test")
    assert page.status_code == 200
    assert f"The mail server accepted the test email to {live.email}." in page.text
    mail = smtp_server.to(live.email)
    assert mail.envelope_from == live.email
    assert mail.message["Subject"] == "MailBeacon test email"
    assert mail.message["From"] == f"Anna Berg <{live.email}>"
    assert mail.message["To"] == f"Anna Berg <{live.email}>"
    text = mail.body("plain")
    assert text and f"127.0.0.1:{smtp_server.port}" in text
    await browser.aclose()


async def test_test_email_reports_the_failure(live: LiveApp, smtp_server: SmtpRecorder) -> None:
    browser = await sign_in(live, live.email)
    port = closed_port()
    await browser.post("/settings/mailbox", mailbox_form(port=str(port)))
    page = await browser.post("/settings/mailbox/test")
    assert page.status_code == 200
    assert "The test email could not be sent." in page.text
    assert "No mail server could be reached there." in page.text
    assert smtp_server.mails == []  # the default server was not used instead

    # The server's refusal is reported by kind, not in its own words.
    await browser.post("/settings/mailbox", mailbox_form(port=str(smtp_server.port)))
    smtp_server.refuse.add(live.email)
    refused = await browser.post("/settings/mailbox/test")
    assert "The test email could not be sent." in refused.text
    assert "The mail server did not accept the test email." in refused.text
    assert "mailbox unavailable" not in refused.text
    await browser.aclose()


def loopback_spellings() -> list[str]:
    """Ways to write this machine that a naive check by name or text misses."""
    spellings = ["127.0.0.1", "127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1", "127.9.9.9"]
    spellings += ["localhost", "LOCALHOST.", "[::1]", "::ffff:127.0.0.1", "0.0.0.0", "0"]  # noqa: S104
    return [*spellings, socket.gethostname()]  # a name that resolves to loopback


PRIVATE_HOSTS = [
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "fe80::1",
    "fc00::1",
    "::ffff:10.0.0.1",
    "64:ff9b::a00:1",
    "metadata.google.internal",
    "metadata",
    "printer.local",
]


async def test_test_email_refuses_loopback_private_and_metadata_destinations(
    serve_app: ServeApp, database_url: str, smtp_server: SmtpRecorder
) -> None:
    """With MAILBEACON_SMTP_ALLOW_PRIVATE off, a user's mailbox cannot reach inside, however
    the address is written; checked after DNS, on every address the name resolves to."""
    live = await serve_app(database_url, smtp_url=smtp_server.url, smtp_allow_private=False)
    browser = await sign_in(live, live.email)
    for host in [*loopback_spellings(), *PRIVATE_HOSTS]:
        saved = await browser.post(
            "/settings/mailbox", mailbox_form(host=host, port=str(smtp_server.port))
        )
        assert saved.status_code == 303, (host, saved.text)
        page = await browser.post("/settings/mailbox/test")
        assert "MailBeacon does not connect to this address" in page.text, host
    assert smtp_server.mails == []
    # The server's own default route (the operator's choice) still works.
    await browser.post("/settings/mailbox/remove")
    page = await browser.post("/settings/mailbox/test")
    assert "The mail server accepted the test email" in page.text
    await browser.aclose()


async def test_test_email_errors_do_not_tell_closed_ports_from_open_ones(live: LiveApp) -> None:
    """A closed port, a service that is not SMTP and a server that hangs up all read the
    same, and nothing the other side said reaches the page."""

    async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.6 secret-internal-host\r\n")
        await writer.drain()
        writer.close()

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    listeners = [await asyncio.start_server(h, "127.0.0.1", 0) for h in (banner, hang_up)]
    ports = [closed_port(), *(s.sockets[0].getsockname()[1] for s in listeners)]
    browser = await sign_in(live, live.email)
    answers = []
    for port in ports:
        await browser.post("/settings/mailbox", mailbox_form(port=str(port)))
        page = await browser.post("/settings/mailbox/test")
        assert "secret-internal-host" not in page.text and "SSH" not in page.text
        alert = re.search(r'<div class="alert error" role="alert">(.*?)</div>', page.text, re.S)
        assert alert, page.text
        answers.append(" ".join(alert.group(1).split()))
    assert len(set(answers)) == 1, answers
    for listener in listeners:
        listener.close()
    await browser.aclose()


async def test_remove_mailbox_falls_back_to_the_default(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    browser = await sign_in(live, live.email)
    await browser.post("/settings/mailbox", mailbox_form(port=str(closed_port())))
    forged = await browser.client.post("/settings/mailbox/remove")
    assert forged.status_code == 403
    assert await mailbox_row(live, live.user_id) is not None

    removed = await browser.post("/settings/mailbox/remove")
    assert removed.status_code == 303
    assert await mailbox_row(live, live.user_id) is None
    page = await browser.get(removed.headers["location"])
    assert "Your mailbox is removed." in page.text
    assert "default mail server, 127.0.0.1" in page.text
    tested = await browser.post("/settings/mailbox/test")
    assert "The mail server accepted the test email" in tested.text
    assert smtp_server.to(live.email)
    await browser.aclose()


async def test_default_server_is_shown_without_credentials(
    serve_app: ServeApp, database_url: str, smtp_server: SmtpRecorder
) -> None:
    live = await serve_app(
        database_url, smtp_url=f"smtp://relay-user:relay-pass@127.0.0.1:{smtp_server.port}"
    )
    browser = await sign_in(live, live.email)
    page = await browser.get("/settings/mailbox")
    assert "default mail server, 127.0.0.1." in page.text
    assert "relay-user" not in page.text and "relay-pass" not in page.text
    await browser.aclose()


async def test_without_smtp_server_mail_goes_to_the_outbox(
    serve_app: ServeApp, database_url: str
) -> None:
    live = await serve_app(database_url)
    browser = await sign_in(live, live.email)
    page = await browser.get("/settings/mailbox")
    assert "kept in the outbox" in page.text
    assert 'href="/outbox"' in page.text
    tested = await browser.post("/settings/mailbox/test")
    assert f"The mail server accepted the test email to {live.email}." in tested.text
    assert "See it in the outbox" in tested.text
    await browser.aclose()


async def test_password_change(live: LiveApp) -> None:
    browser = await sign_in(live, live.email)
    other = await sign_in(live, live.email)
    other_session = other.client.cookies[SESSION]
    new = "a brand new passphrase"

    wrong = await browser.post(
        "/settings/password",
        {"current_password": "guess", "new_password": new, "repeat_password": new},
    )
    assert wrong.status_code == 400
    assert "That is not your current password." in wrong.text
    for form, message in (
        ({"new_password": "short", "repeat_password": "short"}, "at least 8"),
        ({"new_password": new, "repeat_password": new + "!"}, "not the same"),
    ):
        refused = await browser.post("/settings/password", {"current_password": PASSWORD, **form})
        assert refused.status_code == 400
        assert message in refused.text
    assert await is_signed_in(live, other_session)
    forged = await browser.client.post(
        "/settings/password",
        data={"current_password": PASSWORD, "new_password": new, "repeat_password": new},
    )
    assert forged.status_code == 403

    changed = await browser.post(
        "/settings/password",
        {"current_password": PASSWORD, "new_password": new, "repeat_password": new},
    )
    assert changed.status_code == 303
    page = await browser.get(changed.headers["location"])
    assert page.status_code == 200  # this session stays
    assert "Your password is changed." in page.text
    assert not await is_signed_in(live, other_session)
    async with runtime_of(live).engine.connect() as conn:
        left = (
            await conn.execute(select(WebSession).where(WebSession.user_id == live.user_id))
        ).all()
    assert len(left) == 1

    async with client_for(live) as client:
        token = await login_token(client)
        old = await client.post(
            "/login", data={"email": live.email, "password": PASSWORD, "login_csrf": token}
        )
        assert old.status_code == 401
    again = await sign_in(live, live.email, new)
    await again.aclose()
    await other.aclose()
    await browser.aclose()


async def test_api_tokens(live: LiveApp) -> None:
    browser = await sign_in(live, live.email)
    empty_name = await browser.post("/settings/tokens", {"name": "  "})
    assert empty_name.status_code == 400
    assert "Give the token a name" in empty_name.text

    created = await browser.post("/settings/tokens", {"name": "CRM sync"})
    assert created.status_code == 200
    assert created.headers["cache-control"] == "no-store"
    match = TOKEN.search(created.text)
    assert match
    token = match.group(1)
    assert "shown only this once" in created.text
    assert 'href="/api/v1/docs"' in created.text

    listing = await browser.get("/settings/tokens")
    assert token not in listing.text
    assert "CRM sync" in listing.text
    assert f"{token[:12]}…" in listing.text
    assert "never" in listing.text

    used = await live.client.get("/api/v1/messages", headers=live.auth(token))
    assert used.status_code == 200
    listing = await browser.get("/settings/tokens")
    assert "ago" in listing.text or "now" in listing.text  # last used

    async with runtime_of(live).engine.connect() as conn:
        token_id = await conn.scalar(
            select(ApiToken.id).where(ApiToken.user_id == live.user_id, ApiToken.name == "CRM sync")
        )
    forged = await browser.client.post(f"/settings/tokens/{token_id}/revoke")
    assert forged.status_code == 403
    revoked = await browser.post(f"/settings/tokens/{token_id}/revoke")
    assert revoked.status_code == 303
    page = await browser.get(revoked.headers["location"])
    assert "The token is revoked." in page.text
    assert "revoked" in page.text
    refused = await live.client.get("/api/v1/messages", headers=live.auth(token))
    assert refused.status_code == 401
    for missing in ("999999", "0", "99999999999999999999999"):
        response = await browser.post(f"/settings/tokens/{missing}/revoke")
        assert response.status_code == 404, missing
    await browser.aclose()


async def test_another_users_token_cannot_be_revoked(live: LiveApp) -> None:
    other_id, other_token = await live.add_user("other@example.com")
    browser = await sign_in(live, live.email)
    async with runtime_of(live).engine.connect() as conn:
        token_id = await conn.scalar(select(ApiToken.id).where(ApiToken.user_id == other_id))
    response = await browser.post(f"/settings/tokens/{token_id}/revoke")
    assert response.status_code == 404
    still = await live.client.get("/api/v1/messages", headers=live.auth(other_token))
    assert still.status_code == 200
    await browser.aclose()


async def test_users_page_is_for_admins_only(live: LiveApp) -> None:
    browser = await sign_in(live, live.email)
    assert (await browser.get("/settings/users")).status_code == 404
    refused = await browser.post(
        "/settings/users", {"email": "new@example.com", "password": "long enough password"}
    )
    assert refused.status_code == 404
    async with client_for(live) as anonymous:
        assert (await anonymous.get("/settings/users")).status_code == 303

    await make_admin(live, live.user_id)
    page = await browser.get("/settings/users")
    assert page.status_code == 200
    assert live.email in page.text
    assert 'href="/settings/users" aria-current="page"' in page.text

    added = await browser.post(
        "/settings/users",
        {"email": "new@example.com", "password": "long enough password", "is_admin": "1"},
    )
    assert added.status_code == 303
    listing = await browser.get(added.headers["location"])
    assert "new@example.com" in listing.text and "The user is added." in listing.text
    newcomer = await sign_in(live, "new@example.com", "long enough password")
    assert (await newcomer.get("/settings/users")).status_code == 200  # added as admin
    await newcomer.aclose()

    cases: list[tuple[dict[str, object], str]] = [
        ({"email": "NEW@example.com", "password": "long enough password"}, "already a user"),
        ({"email": "not an address", "password": "long enough password"}, "Enter one email"),
        ({"email": "Eve <eve@example.com>", "password": "long enough password"}, "Enter one"),
        ({"email": "eve@example.com", "password": "short"}, "at least 8"),
    ]
    for form, message in cases:
        response = await browser.post("/settings/users", form)
        assert response.status_code == 400, form
        assert message in response.text
        assert str(form["password"]) not in response.text
    async with runtime_of(live).engine.connect() as conn:
        emails = (await conn.execute(select(User.email))).scalars().all()
    assert sorted(emails) == sorted([live.email, "new@example.com"])
    await browser.aclose()


async def test_settings_pages_share_a_sub_navigation(live: LiveApp) -> None:
    browser: Browser = await sign_in(live, live.email)
    for path, label in (
        ("/settings/mailbox", "Mailbox"),
        ("/settings/password", "Password"),
        ("/settings/tokens", "API tokens"),
    ):
        page = await browser.get(path)
        assert page.status_code == 200
        assert f'href="{path}" aria-current="page">{label}</a>' in page.text
        for other in ("/settings", "/settings/mailbox", "/settings/password", "/settings/tokens"):
            assert f'href="{other}"' in page.text
    await browser.aclose()
