"""Issue 6 through the real thing: API and composer -> real SMTP -> real HTTP collector.

Header injection by an RFC 2047 encoded word, line separators in a saved display name,
backslash links, and links too long to travel in a token. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import func, select, update

from mailbeacon.core.mime import COPY_HEADERS
from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.tables import HitRow, Link, User
from tests.conftest import CapturedMail, LiveApp, SmtpRecorder
from tests.helpers import click_urls, eventually
from tests.web_helpers import sign_in

ATTACK = "=?utf-8?q?Hi=0D=0AReply-To:_evil@evil.example?="


async def send(live: LiveApp, **body: Any) -> dict[str, Any]:
    response = await live.client.post("/api/v1/messages", json=body, headers=live.auth())
    assert response.status_code == 201, response.text
    return dict(response.json())


async def delivered(smtp_server: SmtpRecorder, address: str) -> CapturedMail:
    async def arrived() -> CapturedMail | None:
        found = [m for m in smtp_server.mails if address in m.envelope_to]
        return found[0] if found else None

    mail: CapturedMail = await eventually(arrived)
    return mail


def assert_only_our_headers(message: EmailMessage) -> None:
    names = [name.lower() for name in message]
    assert len(names) == len(set(names))  # one From, one Subject...
    assert {"from", "to", "subject", "date", "message-id"} <= set(names) <= COPY_HEADERS
    assert message["Reply-To"] is None and message["Bcc"] is None


async def db_value(live: LiveApp, query: Any) -> Any:
    engine = make_engine(live.settings.effective_database_url)
    try:
        async with sessions(engine)() as db, db.begin():
            return await db.scalar(query)
    finally:
        await engine.dispose()


async def test_header_injection_encoded_word_subject_through_api_and_smtp(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    await send(
        live,
        to=["anna@example.com"],
        bcc=["hidden@example.com"],
        subject=ATTACK,
        text="Hello",
        track_links=False,
    )
    for address in ("anna@example.com", "hidden@example.com"):
        mail = await delivered(smtp_server, address)
        assert_only_our_headers(mail.message)
        assert str(mail.message["Subject"]) == ATTACK  # shown as typed, never decoded
        assert b"\r\nReply-To:" not in mail.raw and b"hidden@example.com" not in mail.raw
        assert mail.body("plain").strip() == "Hello"


async def test_header_injection_encoded_word_subject_through_the_composer(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    browser = await sign_in(live, live.email)
    try:
        form = {"to": "anna@example.com", "cc": "", "bcc": "", "format": "html"}
        response = await browser.post(
            "/mail/new", {**form, "subject": ATTACK, "body": "<p>Hello</p>"}
        )
        assert response.status_code == 303, response.text
    finally:
        await browser.aclose()
    mail = await delivered(smtp_server, "anna@example.com")
    assert_only_our_headers(mail.message)
    assert str(mail.message["Subject"]) == ATTACK


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
async def test_line_separators_in_subject_and_saved_display_name_send(
    live: LiveApp, smtp_server: SmtpRecorder, separator: str
) -> None:
    await db_value(
        live,
        update(User)
        .where(User.id == live.user_id)
        .values(display_name=f"Anna{separator}Sales")
        .returning(User.id),
    )
    await send(live, to=["bo@example.com"], subject=f"Q3{separator}plan", text="Hi")
    mail = await delivered(smtp_server, "bo@example.com")
    assert_only_our_headers(mail.message)
    assert str(mail.message["Subject"]) == "Q3 plan"
    assert mail.message["From"].addresses[0].display_name == "Anna Sales"


async def clicks(live: LiveApp) -> int:
    return int(await db_value(live, select(func.count()).select_from(HitRow)) or 0)


async def test_backslash_link_redirects_where_a_browser_would_go(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    written = "https://example.com\\@evil.example/"
    await send(live, to=["cy@example.com"], html=f'<a href="{written}">x</a>', track_links=True)
    mail = await delivered(smtp_server, "cy@example.com")
    [tracked] = click_urls(mail.body("html") or "")
    response = await live.client.get(tracked)
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.com/@evil.example/"


async def test_long_link_of_20000_characters_redirects(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    url = "https://example.com/report?q=" + "a1" * 10_000
    await send(live, to=["dee@example.com"], html=f'<a href="{url}">report</a>', track_links=True)
    mail = await delivered(smtp_server, "dee@example.com")
    [tracked] = click_urls(mail.body("html") or "")
    assert len(tracked) < 200  # the token names the stored link
    for _ in range(2):  # the second click is served from the collector's cache
        response = await live.client.get(tracked)
        assert response.status_code == 302
        assert response.headers["location"] == url
    assert await clicks(live) == 2


async def test_long_link_with_tampered_token_or_stored_url_redirects_nowhere(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    url = "https://example.com/long?" + "b" * 8000
    await send(live, to=["eve@example.com"], html=f'<a href="{url}">x</a>', track_links=True)
    mail = await delivered(smtp_server, "eve@example.com")
    [tracked] = click_urls(mail.body("html") or "")
    prefix, token = tracked.rsplit("/", 1)
    before = await clicks(live)
    for index in range(len(token) - 1):  # every character but the last (padding bits)
        swapped = "A" if token[index] != "A" else "B"
        response = await live.client.get(f"{prefix}/{token[:index]}{swapped}{token[index + 1 :]}")
        assert response.status_code == 404, index
        assert "location" not in response.headers
    # A stored URL changed behind the token's back no longer matches the signed digest
    # (nothing was cached: no valid click happened yet).
    await db_value(live, update(Link).values(url=url + "&evil=1").returning(Link.id))
    response = await live.client.get(tracked)
    assert response.status_code == 404
    assert "location" not in response.headers
    assert await clicks(live) == before


async def test_links_left_untracked_on_purpose_are_explained_api_page_and_composer(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    """Rule 5: a link left as written (odd spelling, a password in it) is not silently
    untracked: the API, the message page and the composer's preview say why."""
    html = (
        '<p><a href="https://example.com/ok">fine</a> '
        '<a href="https:/example.com/odd">odd</a> '
        '<a href="https://user:secret@example.com/in">login</a></p>'
    )
    sent = await send(live, to=["di@example.com"], html=html, track_links=True)
    assert {c["code"] for c in sent["untracked"]} == {"link_odd_spelling", "link_credentials"}
    assert all(c["text"] for c in sent["untracked"])
    mail = await delivered(smtp_server, "di@example.com")
    body = mail.body("html") or ""
    assert len(click_urls(body)) == 1  # only the well-formed link goes through us
    assert 'href="https:/example.com/odd"' in body

    browser = await sign_in(live, live.email)
    try:
        page = await browser.get(f"/mail/{sent['id']}")
        assert "user name or password" in page.text and "browsers may read it" in page.text
        preview = await browser.post(
            "/mail/tracking-preview",
            {"to": "di@example.com", "subject": "x", "body": html, "track_links": "1"},
        )
        assert preview.status_code == 200
        assert "user name or password" in preview.text
    finally:
        await browser.aclose()
