"""Signing in and out over real HTTP, on SQLite and PostgreSQL: cookies, CSRF, session
fixation, open redirects, security headers, and one user never reaching another's
settings, tokens or mailbox (S7)."""

from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any, cast

import httpx
import pytest
from sqlalchemy import select, update

from mailbeacon.runtime import Runtime
from mailbeacon.store import accounts
from mailbeacon.store.tables import ApiToken, Mailbox, User
from tests.conftest import LiveApp
from tests.web_helpers import (
    LOGIN_CSRF,
    PASSWORD,
    client_for,
    login_token,
    sign_in,
)

SESSION = "mb_session"


def runtime_of(live: LiveApp) -> Runtime:
    """The served app's runtime (collector -> security headers -> FastAPI)."""
    return cast(Runtime, live.runtime)


def set_cookie(response: httpx.Response, name: str) -> str | None:
    """The raw Set-Cookie header for `name`, if the response sets it."""
    for header in response.headers.get_list("set-cookie"):
        if header.split("=", 1)[0].strip() == name:
            return header
    return None


def cookie_value(response: httpx.Response, name: str) -> str | None:
    header = set_cookie(response, name)
    if header is None:
        return None
    return header.split("=", 1)[1].split(";", 1)[0].strip('"')


async def is_signed_in(live: LiveApp, session_id: str) -> bool:
    """Whether a bare session cookie value still opens a protected page."""
    async with client_for(live) as client:
        response = await client.get("/settings", headers={"Cookie": f"{SESSION}={session_id}"})
    return response.status_code == 200


async def test_login_page_speaks_the_visitors_language(live: LiveApp) -> None:
    """B8: signed-out pages follow Accept-Language."""
    async with client_for(live) as client:
        german = await client.get("/login", headers={"Accept-Language": "de-DE,de;q=0.9"})
        english = await client.get("/login", headers={"Accept-Language": "fr-FR, en;q=0.5"})
    assert german.status_code == 200
    assert '<html lang="de">' in german.text
    assert 'name="login_csrf"' in german.text
    assert '<html lang="en">' in english.text


async def test_wrong_password_is_refused_without_a_session(live: LiveApp) -> None:
    async with client_for(live) as client:
        token = await login_token(client)
        response = await client.post(
            "/login",
            data={"email": live.email, "password": "not the password", "login_csrf": token},
        )
        assert response.status_code == 401
        assert "do not match" in response.text
        assert set_cookie(response, SESSION) is None
        # Every rendering of the form issues a fresh login token.
        again = LOGIN_CSRF.search(response.text)
        assert again and again.group(1) != token
        unknown = await client.post(
            "/login",
            data={
                "email": "nobody@example.com",
                "password": PASSWORD,
                "login_csrf": again.group(1),
            },
        )
        assert unknown.status_code == 401
        assert set_cookie(unknown, SESSION) is None


async def test_login_sets_an_httponly_samesite_session_cookie(live: LiveApp) -> None:
    async with client_for(live) as client:
        response = await client.post(
            "/login",
            data={
                "email": live.email.upper(),
                "password": PASSWORD,
                "login_csrf": await login_token(client),
                "next": "/settings/tokens",
            },
        )
    assert response.status_code == 303
    assert response.headers["location"] == "/settings/tokens"
    header = set_cookie(response, SESSION)
    assert header is not None
    attributes = {part.strip().lower() for part in header.split(";")[1:]}
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "path=/" in attributes
    session_id = cookie_value(response, SESSION)
    assert session_id and len(session_id) >= 32
    assert await is_signed_in(live, session_id)


async def test_no_session_fixation(live: LiveApp) -> None:
    """A session id planted before sign-in is never the one after it, and stops working."""
    attacker_email = "mallory@example.com"
    await live.add_user(attacker_email)
    attacker = await sign_in(live, attacker_email)
    planted = attacker.client.cookies[SESSION]
    assert await is_signed_in(live, planted)

    for before in (planted, "chosen-by-the-attacker-0123456789"):
        async with client_for(live) as victim:
            token = await login_token(victim)
            victim.cookies.set(SESSION, before, domain="127.0.0.1")
            response = await victim.post(
                "/login", data={"email": live.email, "password": PASSWORD, "login_csrf": token}
            )
        assert response.status_code == 303
        after = cookie_value(response, SESSION)
        assert after and after != before
        assert not await is_signed_in(live, before)
        assert await is_signed_in(live, after)
    await attacker.aclose()


async def test_logout_needs_post_and_csrf(live: LiveApp) -> None:
    browser = await sign_in(live, live.email)
    session_id = browser.client.cookies[SESSION]

    assert (await browser.get("/logout")).status_code == 405
    no_token = await browser.client.post("/logout")
    assert no_token.status_code == 403
    wrong_token = await browser.client.post("/logout", data={"csrf_token": "x" * 43})
    assert wrong_token.status_code == 403
    assert await is_signed_in(live, session_id)

    response = await browser.post("/logout")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert not await is_signed_in(live, session_id)
    after = await browser.get("/settings")
    assert after.status_code == 303
    await browser.aclose()


async def test_signed_out_pages_redirect_to_login_and_back(live: LiveApp) -> None:
    async with client_for(live) as client:
        for path in ("/settings", "/settings/mailbox", "/settings/tokens", "/settings/users"):
            response = await client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"] == f"/login?next={path}"
        with_query = await client.get("/settings/tokens?page=2")
        assert with_query.headers["location"].startswith("/login?next=/settings/tokens%3Fpage")
        posted = await client.post("/settings", data={"language": "de"})
        assert posted.status_code == 303
        assert posted.headers["location"].startswith("/login")

        form = await client.get("/login?next=/settings/password")
        assert 'name="next" value="/settings/password"' in form.text
        response = await client.post(
            "/login",
            data={
                "email": live.email,
                "password": PASSWORD,
                "login_csrf": LOGIN_CSRF.search(form.text).group(1),  # type: ignore[union-attr]
                "next": "/settings/password",
            },
        )
        assert response.headers["location"] == "/settings/password"


@pytest.mark.parametrize(
    "target",
    ["//evil.example", "https://evil.example/x", "/\\evil.example", "javascript:alert(1)"],
)
async def test_next_never_leaves_the_site(live: LiveApp, target: str) -> None:
    async with client_for(live) as client:
        form = await client.get("/login", params={"next": target})
        assert "evil.example" not in form.text
        response = await client.post(
            "/login",
            data={
                "email": live.email,
                "password": PASSWORD,
                "login_csrf": LOGIN_CSRF.search(form.text).group(1),  # type: ignore[union-attr]
                "next": target,
            },
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/"
        # Already signed in: the login page forwards, still never off-site.
        again = await client.get("/login", params={"next": target})
        assert again.status_code == 303
        assert again.headers["location"] == "/"


async def test_login_form_needs_its_own_csrf_token(live: LiveApp) -> None:
    async with client_for(live) as client:
        token = await login_token(client)
        missing = await client.post("/login", data={"email": live.email, "password": PASSWORD})
        assert missing.status_code == 400
        assert "expired" in missing.text
        assert set_cookie(missing, SESSION) is None
        wrong = await client.post(
            "/login",
            data={"email": live.email, "password": PASSWORD, "login_csrf": token[::-1]},
        )
        assert wrong.status_code == 400
        assert set_cookie(wrong, SESSION) is None
    async with client_for(live) as cookieless:  # a cross-site form has no login cookie
        response = await cookieless.post(
            "/login", data={"email": live.email, "password": PASSWORD, "login_csrf": token}
        )
        assert response.status_code == 400


async def test_security_headers_on_pages(live: LiveApp) -> None:
    browser = await sign_in(live, live.email)
    responses = [
        await browser.get("/settings"),
        await browser.get("/settings/tokens"),
        await browser.get("/settings/users"),  # a 404 page
    ]
    async with client_for(live) as client:
        responses.append(await client.get("/login"))
    for response in responses:
        csp = response.headers.get("content-security-policy", "")
        assert "default-src 'self'" in csp and "frame-ancestors 'self'" in csp
        assert "script-src 'self'" in csp
        assert response.headers.get("x-frame-options") == "SAMEORIGIN"
        assert response.headers.get("x-content-type-options") == "nosniff"
    assert responses[2].status_code == 404
    await browser.aclose()


async def test_one_user_never_reaches_anothers_account(live: LiveApp) -> None:
    """S7: settings, tokens and mailbox are all taken from the session's own user."""
    runtime = runtime_of(live)
    a = await sign_in(live, live.email)
    await a.post(
        "/settings",
        {"display_name": "Anna Private", "language": "sv", "timezone": "Europe/Stockholm"},
    )
    await a.post(
        "/settings/mailbox",
        {"host": "smtp.anna-private.example", "port": "2525", "security": "tls",
         "username": "anna-login", "password": "anna-secret"},
    )  # fmt: skip
    created = await a.post("/settings/tokens", {"name": "Anna Ledger"})
    anna_token = re.search(r'value="(mbk_[^"]+)"', created.text)
    assert anna_token

    b_id, _ = await live.add_user("bert@example.com")
    b = await sign_in(live, "bert@example.com")
    pages = [await b.get(p) for p in ("/settings", "/settings/mailbox", "/settings/tokens")]
    for page in pages:
        assert page.status_code == 200
        for secret in ("Anna Private", "anna-private", "anna-login", "anna-secret", "Ledger"):
            assert secret not in page.text
        assert '<html lang="en">' in page.text
    assert anna_token.group(1)[:12] not in pages[2].text

    async with runtime.engine.connect() as conn:
        anna_token_id = (
            (await conn.execute(select(ApiToken.id).where(ApiToken.user_id == live.user_id)))
            .scalars()
            .all()
        )
    for token_id in anna_token_id:
        refused = await b.post(f"/settings/tokens/{token_id}/revoke")
        assert refused.status_code == 404
    still = await live.client.get("/api/v1/messages", headers=live.auth(anna_token.group(1)))
    assert still.status_code == 200

    # Bert's changes land on Bert alone.
    await b.post("/settings", {"display_name": "Bert", "language": "de", "timezone": "UTC"})
    await b.post("/settings/mailbox/remove")
    async with runtime.engine.connect() as conn:
        anna = (await conn.execute(select(User).where(User.id == live.user_id))).one()
        bert = (await conn.execute(select(User).where(User.id == b_id))).one()
        mailboxes = (await conn.execute(select(Mailbox.user_id, Mailbox.host))).all()
    assert (anna.display_name, anna.locale, anna.timezone) == (
        "Anna Private",
        "sv",
        "Europe/Stockholm",
    )
    assert (bert.display_name, bert.locale) == ("Bert", "de")
    assert [tuple(row) for row in mailboxes] == [(live.user_id, "smtp.anna-private.example")]
    await a.aclose()
    await b.aclose()


async def test_password_guessing_is_throttled(live: LiveApp) -> None:
    """After five wrong passwords for one account, even the right one waits (429)."""
    async with httpx.AsyncClient(base_url=live.base_url, timeout=15) as client:

        async def attempt(password: str) -> httpx.Response:
            return await client.post(
                "/login",
                data={
                    "email": live.email,
                    "password": password,
                    "login_csrf": await login_token(client),
                },
            )

        for _ in range(5):
            assert (await attempt("wrong password")).status_code == 401
        refused = await attempt(PASSWORD)
        assert refused.status_code == 429
        assert "Too many failed attempts" in refused.text
        assert int(refused.headers["retry-after"]) > 0
        assert "mb_session" not in refused.cookies
        await live.add_user("other@example.com")  # other accounts still sign in
        other = await client.post(
            "/login",
            data={
                "email": "other@example.com",
                "password": PASSWORD,
                "login_csrf": await login_token(client),
            },
        )
        assert other.status_code == 303


async def test_sign_in_follows_the_browser_time_zone_until_one_is_chosen(live: LiveApp) -> None:
    async def sign_in_from(zone: str) -> str:
        async with httpx.AsyncClient(base_url=live.base_url, timeout=15) as client:
            response = await client.post(
                "/login",
                data={
                    "email": live.email,
                    "password": PASSWORD,
                    "login_csrf": await login_token(client),
                    "browser_timezone": zone,
                },
            )
            assert response.status_code == 303
        async with live.runtime.engine.connect() as conn:
            return str(
                (await conn.execute(select(User.timezone).where(User.id == live.user_id))).scalar()
            )

    assert await sign_in_from("Europe/Tallinn") == "Europe/Tallinn"
    assert await sign_in_from("Not/AZone") == "Europe/Tallinn"  # nonsense is ignored
    browser = await sign_in(live, live.email)
    try:
        settings = await browser.get("/settings")
        assert "Europe/Tallinn" in settings.text
        saved = await browser.post(
            "/settings",
            {
                "display_name": "",
                "language": "en",
                "timezone": "UTC",
                "open_tracking": "1",
                "link_tracking": "1",
                "notify_tracking": "1",
            },
        )
        assert saved.status_code == 303
    finally:
        await browser.aclose()
    assert await sign_in_from("America/New_York") == "UTC"  # chosen in Settings: kept


async def test_signed_in_pages_and_api_answers_are_not_stored(live: LiveApp) -> None:
    """Cache-Control: no-store on every answer that can hold a user's data; static files cache."""
    browser = await sign_in(live, live.email)
    responses = [
        await browser.get("/mail"),
        await browser.get("/settings"),
        await browser.get("/contacts"),
        await browser.get("/notifications"),
        await browser.get("/mail/999999"),  # an error page
        await browser.post("/notifications/read-all"),  # a redirect
        await live.client.get("/api/v1/messages", headers=live.auth()),
        await live.client.get("/api/v1/messages/999999", headers=live.auth()),
    ]
    for response in responses:
        assert response.headers.get("cache-control") == "no-store", response.url
    static = await browser.get("/static/app.css")
    assert static.status_code == 200
    assert "no-store" not in static.headers.get("cache-control", "")
    await browser.aclose()


async def test_sign_in_timing_does_not_tell_known_accounts_from_unknown(
    live: LiveApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong password for a real account and any password for an unknown email take as
    long: both run one argon2 check at the production cost (min of several runs each)."""
    monkeypatch.delenv(accounts.CHEAP_HASHES_VARIABLE)
    accounts._hasher.cache_clear()
    accounts._unknown_user_hash.cache_clear()
    try:
        real_hash = accounts.hash_password(PASSWORD)
        async with runtime_of(live).engine.begin() as conn:
            await conn.execute(
                update(User).where(User.id == live.user_id).values(password_hash=real_hash)
            )
        async with client_for(live) as client:
            tokens = [await login_token(client)]

            async def attempt(email: str) -> float:
                form = {"email": email, "password": "wrong guess", "login_csrf": tokens[-1]}
                started = time.perf_counter()
                response = await client.post("/login", data=form)
                elapsed = time.perf_counter() - started
                assert response.status_code == 401, (response.status_code, email)
                match = LOGIN_CSRF.search(response.text)  # each form carries a fresh token
                assert match
                tokens.append(match.group(1))
                return elapsed

            await attempt("warm-up@example.com")  # the stand-in hash is made once, here
            known = min([await attempt(live.email) for _ in range(4)])
            unknown = min([await attempt(f"nobody{i}@example.com") for i in range(4)])
    finally:
        accounts._hasher.cache_clear()
        accounts._unknown_user_hash.cache_clear()
    assert unknown > 0.5 * known, (known, unknown)
    assert known > 0.5 * unknown, (known, unknown)


async def raw_request(live: LiveApp, head: str, body: bytes) -> bytes:
    """Send a request head and part of a body over a raw connection, never finishing the
    body, and return the status line: the server must answer without reading the rest."""
    port = int(live.base_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), timeout=10)
    finally:
        writer.close()


async def test_large_bodies_without_credentials_are_refused_before_they_are_read(
    live: LiveApp,
) -> None:
    """Rule 6: no one unknown makes the web process buffer 12 MB: past 64 KB without a live
    session or API token, a chunked upload or a declared length is refused at once."""
    chunk = b"4000\r\n" + b"a" * 0x4000 + b"\r\n"  # 16 KB chunks, never a last chunk
    for credentials in (
        "",
        "Authorization: Bearer mbk_not-a-real-token\n",
        "Cookie: mb_session=x\n",
    ):
        chunked = (
            "POST /login HTTP/1.1\nHost: app\nContent-Type: application/x-www-form-urlencoded\n"
            f"Transfer-Encoding: chunked\n{credentials}"
        )
        assert (await raw_request(live, chunked, chunk * 5)).startswith(b"HTTP/1.1 413")
        declared = (
            "POST /api/v1/messages HTTP/1.1\nHost: app\nContent-Type: application/json\n"
            f"Content-Length: 5000000\n{credentials}"
        )
        assert (await raw_request(live, declared, b"{")).startswith(b"HTTP/1.1 413")


async def test_large_bodies_with_credentials_keep_the_documented_limit(live: LiveApp) -> None:
    big_text = "x" * 300_000

    async def chunks() -> Any:
        body = json.dumps({"to": ["ann@example.com"], "subject": "Big", "text": big_text})
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536].encode()

    response = await live.client.post(
        "/api/v1/messages",
        content=chunks(),
        headers={**live.auth(), "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text
    browser = await sign_in(live, live.email)
    page = await browser.post("/mail/tracking-preview", {"body": big_text, "format": "text"})
    assert page.status_code == 200
    await browser.aclose()
