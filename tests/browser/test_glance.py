"""Issue #9 in real Chromium, at desktop (1280 px) and phone (390 px) widths:

- at a glance: the lists say it in words (screenshots of the new look);
- bug 2: a 95-character URL and a 998-character subject stay inside the viewport
  on the mail list, the message page and the contacts list;
- bug 3: Settings in the main menu and Users in the settings menu are on screen;
- bug 8: faded icons have 3:1 contrast (from the real computed colours), "not
  tracked" is lighter than and unlike "not opened yet", the composer's toggles
  are switches;
- bug 9: no page asks for something missing (the favicon);
- desktop notifications: asked for only on a click, shown when the page is not in
  front, a burst as one, and clicking one marks it read and opens the message.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect
from sqlalchemy import select, update

from mailbeacon.store.tables import Notification, Recipient, User
from tests.browser.conftest import screenshot_path
from tests.conftest import LiveApp, SmtpRecorder
from tests.helpers import eventually
from tests.test_web_glance import activity, send, write
from tests.web_helpers import sign_in

SHOOT = os.environ.get("MAILBEACON_SCREENSHOTS") == "1"
DESKTOP_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
LONG_URL = "https://example.com/" + "a-very-long-unbroken-path-segment-" * 2 + "x" * 7
WIDTHS = [1280, 390]

# Contrast of two CSS colours (WCAG 2 relative luminance), the foreground blended
# over the background by its effective opacity (the element's and its ancestors').
# It takes an id, not an element: the list swaps its rows in live (compose.js), and
# an element looked up earlier may be detached by the time it is measured.
CONTRAST_JS = """
(id) => {
  const el = document.getElementById(id);
  const parse = (c) => c.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  let opacity = 1, node = el.querySelector("svg") || el;
  for (let n = node; n; n = n.parentElement) opacity *= Number(getComputedStyle(n).opacity);
  let bg = null;
  for (let n = el; n && !bg; n = n.parentElement) {
    const c = parse(getComputedStyle(n).backgroundColor);
    if (c.length < 4 || c[3] > 0) bg = c.slice(0, 3);
  }
  bg = bg || [255, 255, 255];
  const fgRaw = parse(getComputedStyle(el).color);
  const alpha = (fgRaw.length > 3 ? fgRaw[3] : 1) * opacity;
  const fg = fgRaw.slice(0, 3).map((v, i) => v * alpha + bg[i] * (1 - alpha));
  const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
  return { ratio: (hi + 0.05) / (lo + 0.05), luminance: lum(fg),
           border: getComputedStyle(el).borderTopStyle };
}
"""
TRACKING_RIGHT_JS = """
() => [...document.querySelectorAll("th")]
  .find((th) => th.textContent.trim() === "Tracking").getBoundingClientRect().right
"""
OVERFLOW_JS = "document.documentElement.scrollWidth - window.innerWidth"

# A stand-in for the browser's Notification API (headless Chromium shows none): it
# records what would be shown and keeps the granted permission for the tab's session.
FAKE_NOTIFICATIONS = """
(() => {
  window.__shown = [];
  window.__asked = 0;
  class FakeNotification {
    constructor(title, options) {
      this.title = title; this.body = options.body; this.tag = options.tag;
      window.__shown.push(this);
    }
    close() {}
    static get permission() { return sessionStorage.getItem("fake-permission") || "default"; }
    static requestPermission() {
      window.__asked += 1;
      sessionStorage.setItem("fake-permission", "granted");
      return Promise.resolve("granted");
    }
  }
  window.Notification = FakeNotification;
  document.hasFocus = () => false;  // MailBeacon is in a background tab
})();
"""


@asynccontextmanager
async def signed_in(
    browser: Browser, live: LiveApp, width: int, email: str = ""
) -> AsyncIterator[tuple[BrowserContext, Page]]:
    session = await sign_in(live, email or live.email)
    cookie = session.client.cookies.get("mb_session")
    await session.aclose()
    assert cookie
    context = await browser.new_context(
        viewport={"width": width, "height": 900}, locale="en-US", user_agent=DESKTOP_AGENT
    )
    context.set_default_timeout(15_000)
    try:
        await context.add_cookies([{"name": "mb_session", "value": cookie, "url": live.base_url}])
        yield context, await context.new_page()
    finally:
        await context.close()


async def shoot(page: Page, name: str, width: int) -> None:
    """Keep a screenshot for the README when asked to (`make screenshots`)."""
    if not SHOOT:
        return
    suffix = "desktop" if width >= 1000 else "phone"
    height = await page.evaluate("document.documentElement.scrollHeight")
    await page.set_viewport_size({"width": width, "height": max(height, 200)})
    await page.screenshot(path=screenshot_path(f"{name}-{suffix}"))
    await page.set_viewport_size({"width": width, "height": 900})


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("width", WIDTHS)
async def test_long_unbroken_subjects_stay_within_the_viewport(
    live: LiveApp, smtp_server: SmtpRecorder, browser: Browser, width: int
) -> None:
    now = datetime.now(UTC)
    url_subject = await send(live, LONG_URL, to="Anna Berg <anna@example.com>")
    assert len(LONG_URL) == 95
    huge = await send(live, "W" * 998, to="ben@example.com")
    await activity(live, url_subject, now=now, opens=3, opened_ago=timedelta(minutes=5))
    async with signed_in(browser, live, width) as (_, page):
        for path in ("/mail", f"/mail/{url_subject}", f"/mail/{huge}", "/contacts"):
            await page.goto(live.base_url + path, wait_until="load")
            assert await page.evaluate(OVERFLOW_JS) <= 0, path
        await page.goto(live.base_url + "/mail", wait_until="load")
        if width >= 1000:  # the Tracking column is on screen, beside the subject
            right = await page.evaluate(TRACKING_RIGHT_JS)  # one look: rows swap in live
            assert 0 < right <= width
        await shoot(page, "mail-list-glance", width)
        # The sort is within reach at both widths: the column header on a desktop, the
        # "Sort by" links on a phone, where the table's headers are hidden.
        if width >= 1000:
            chooser = page.get_by_role("columnheader", name="Last activity")
        else:
            chooser = page.get_by_role("navigation", name="Sort by")
        await chooser.get_by_role("link", name="Last activity").click()
        await page.wait_for_url(f"{live.base_url}/mail?sort=activity")
        assert await page.evaluate(OVERFLOW_JS) <= 0
        await page.goto(live.base_url + "/contacts?sort=activity", wait_until="load")
        await shoot(page, "contacts-glance", width)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("width", WIDTHS)
async def test_settings_and_users_are_on_screen_in_both_menus(
    live: LiveApp, smtp_server: SmtpRecorder, browser: Browser, width: int
) -> None:
    await write(
        live,
        lambda db: db.execute(update(User).where(User.id == live.user_id).values(is_admin=True)),
    )
    async with signed_in(browser, live, width) as (_, page):
        await page.goto(live.base_url + "/settings", wait_until="load")
        for menu, name in (("Main", "Settings"), ("Settings sections", "Users")):
            link = page.get_by_role("navigation", name=menu).get_by_role("link", name=name)
            await expect(link).to_be_visible()
            box = await link.bounding_box()
            assert box is not None
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, (menu, box)
        assert await page.evaluate(OVERFLOW_JS) <= 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("width", WIDTHS)
async def test_icons_have_contrast_and_untracked_differs_and_toggles_are_switches(
    live: LiveApp, smtp_server: SmtpRecorder, browser: Browser, width: int
) -> None:
    tracked = await send(live, "Tracked, not opened", to="anna@example.com")
    untracked = await send(live, "Not tracked", to="ben@example.com", tracked=False)
    async with signed_in(browser, live, width) as (_, page):
        await page.goto(live.base_url + "/mail", wait_until="load")
        faded = await page.evaluate(CONTRAST_JS, f"icon-m{tracked}-open")
        faded_link = await page.evaluate(CONTRAST_JS, f"icon-m{tracked}-click")
        plain = await page.evaluate(CONTRAST_JS, f"icon-m{untracked}-open")
        for measured in (faded, faded_link, plain):
            assert measured["ratio"] >= 3, measured
        # "Not tracked" is lighter than "not opened yet", and drawn differently.
        assert plain["luminance"] > faded["luminance"]
        assert plain["border"] == "dashed" and faded["border"] != "dashed"

        await page.goto(live.base_url + "/mail/new", wait_until="load")
        for name in ("Track email opening", "Track link clicks"):
            switch = page.get_by_role("switch", name=name)
            await expect(switch).to_have_count(1)
            before = await switch.is_checked()
            await switch.click()
            # The accessibility tree says the new state (checked / not checked).
            await expect(page.get_by_role("switch", name=name, checked=not before)).to_have_count(1)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_no_page_asks_for_anything_missing(
    live: LiveApp, smtp_server: SmtpRecorder, browser: Browser
) -> None:
    message_id = await send(live, "Hello", to="anna@example.com")
    async with signed_in(browser, live, 1280) as (_, page):
        missing: list[str] = []
        page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
        for path in (
            "/mail",
            f"/mail/{message_id}",
            "/mail/new",
            "/contacts",
            "/notifications",
            "/settings",
            "/api/v1/docs",
        ):
            await page.goto(live.base_url + path, wait_until="load")
            icon = await page.evaluate(
                "(document.querySelector('link[rel=icon]') || {}).href || '/favicon.ico'"
            )
            status = await page.evaluate("(u) => fetch(u).then(r => r.status)", icon)
            assert status == 200, (path, icon)
        assert missing == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("width", WIDTHS)
async def test_desktop_notifications_are_asked_for_on_a_click_and_open_the_message_read(
    live: LiveApp, smtp_server: SmtpRecorder, browser: Browser, width: int
) -> None:
    message_id = await send(live, "Proposal", to="Anna Berg <anna@example.com>")
    async with signed_in(browser, live, width) as (context, page):
        await context.add_init_script(FAKE_NOTIFICATIONS)
        await page.goto(live.base_url + "/notifications", wait_until="load")
        switch_on = page.get_by_role("button", name="Turn on desktop notifications")
        await expect(switch_on).to_be_visible()
        assert await page.evaluate("window.__asked") == 0  # never asked on page load
        await shoot(page, "notifications-glance", width)
        await switch_on.click()
        assert await page.evaluate("window.__asked") == 1
        await expect(
            page.get_by_role("button", name="Turn off desktop notifications")
        ).to_be_visible()

        await page.goto(live.base_url + "/mail", wait_until="load")
        await expect(page.locator("#bell")).to_have_attribute("aria-label", "Notifications")
        ids = await _notify(live, message_id, count=2)  # one burst: two at once
        # Polled from the test (a string predicate would need eval, which the CSP forbids).
        await eventually(lambda: page.evaluate("window.__shown.length > 0"), timeout=15)
        await expect(page.locator("#bell")).to_have_attribute(
            "aria-label", "Notifications, 2 unread"
        )
        shown = await page.evaluate("window.__shown.map(n => [n.title, n.body])")
        assert len(shown) == 1  # grouped
        assert shown[0][0] == "MailBeacon" and shown[0][1].count("Anna Berg opened") == 2

        await page.evaluate("window.__shown[0].onclick()")
        await page.wait_for_url(f"{live.base_url}/mail/{message_id}")

        async def read_marks(db: Any) -> list[bool]:
            rows = await db.scalars(select(Notification).where(Notification.id.in_(ids)))
            return [n.read_at is not None for n in rows]

        assert await write(live, read_marks) == [True, True]
        await expect(page.locator("#bell")).to_have_attribute("aria-label", "Notifications")


async def _notify(live: LiveApp, message_id: int, count: int) -> list[int]:
    """Notifications as the processor raises them, committed together (one burst)."""

    async def work(db: Any) -> list[int]:
        recipient = (
            await db.scalars(select(Recipient).where(Recipient.message_id == message_id))
        ).one()
        rows = [
            Notification(
                user_id=live.user_id,
                hit_seq=40_000_000 + message_id * 10 + n,
                message_id=message_id,
                recipient_id=recipient.id,
                kind="open",
                occurred_at=datetime.now(UTC),
            )
            for n in range(count)
        ]
        db.add_all(rows)
        await db.flush()
        return [row.id for row in rows]

    ids: list[int] = await write(live, work)
    return ids
