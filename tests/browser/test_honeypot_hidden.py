"""The honeypot link in real Chromium (B3): nothing to see, reach or hear for a person;
followed by software, it redirects safely and is recorded with its own link id."""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.async_api import BrowserContext
from sqlalchemy import select

from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.tables import HitRow, Link
from tests.conftest import LiveApp, SmtpRecorder
from tests.helpers import delivered, eventually

HONEYPOT = re.compile(r'<a href="([^"]+)" aria-hidden="true"[^>]*></a>')
HTML = (
    "<!DOCTYPE html><html><head><title>Offer</title></head>"
    '<body style="margin:0;font:16px sans-serif">'
    '<p>Hello, see <a href="https://example.com/pricing">our prices</a>.</p>'
    "</body></html>"
)


async def sent_html(live: LiveApp, smtp: SmtpRecorder) -> tuple[int, str]:
    body = {
        "to": ["carl@example.com"],
        "subject": "Offer",
        "html": HTML,
        "track_opens": False,
        "track_links": True,
    }
    response = await live.client.post("/api/v1/messages", json=body, headers=live.auth())
    assert response.status_code == 201, response.text
    message_id = response.json()["id"]
    await delivered(live.client, message_id, live.auth())
    html = smtp.to("carl@example.com").body("html")
    assert html is not None
    return message_id, html


async def test_the_honeypot_is_invisible_and_unreachable_for_a_person(
    live: LiveApp, smtp_server: SmtpRecorder, desktop: BrowserContext
) -> None:
    _, html = await sent_html(live, smtp_server)
    assert len(HONEYPOT.findall(html)) == 1
    page = await desktop.new_page()
    await page.set_content(html)
    honeypot = page.locator("a[aria-hidden=true]")
    assert await honeypot.count() == 1
    assert not await honeypot.is_visible()
    assert await honeypot.bounding_box() is None  # no box at all
    with_honeypot = await page.screenshot()
    # Assistive technology sees one link: the real one.
    links = page.get_by_role("link")
    assert await links.count() == 1
    assert await links.first.text_content() == "our prices"
    # The keyboard reaches the real link and never the honeypot.
    for _ in range(3):
        await page.keyboard.press("Tab")
        focused = await page.evaluate("document.activeElement.getAttribute('aria-hidden')")
        assert focused != "true"
    # Pixel for pixel, the mail looks the same without it (before any focus ring is drawn).
    plain = await desktop.new_page()
    await plain.set_content(HONEYPOT.sub("", html))
    assert await plain.screenshot() == with_honeypot


async def test_following_the_honeypot_redirects_home_and_records_its_link(
    live: LiveApp, smtp_server: SmtpRecorder, desktop: BrowserContext
) -> None:
    message_id, html = await sent_html(live, smtp_server)
    (href,) = HONEYPOT.findall(html)
    # What a scanner does: request the URL. The answer is the installation's own root.
    async with httpx.AsyncClient() as scanner:
        answer = await scanner.get(href.replace("&amp;", "&"))
    assert answer.status_code == 302
    assert answer.headers["location"] == live.settings.public_url + "/"
    page = await desktop.new_page()
    await page.goto(href)
    assert page.url.startswith(live.base_url + "/")

    engine = make_engine(live.settings.effective_database_url)
    try:
        async with sessions(engine)() as db:
            links = list(await db.scalars(select(Link).where(Link.message_id == message_id)))

            async def clicks() -> list[Any]:
                rows = await db.scalars(select(HitRow).where(HitRow.kind == "click"))
                found = list(rows)
                return found if len(found) >= 2 else []

            recorded = await eventually(clicks, timeout=15)
    finally:
        await engine.dispose()
    honeypots = [link for link in links if link.honeypot]
    assert len(honeypots) == 1 and len(links) == 2
    assert honeypots[0].url == live.settings.public_url + "/"
    assert {row.link_id for row in recorded} == {honeypots[0].id}
