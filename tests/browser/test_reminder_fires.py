"""B5 in real Chromium: set "remind me if not opened in 3 days" in the composer, move
the clock (the worker's step with a later `now`, never a sleep), and the reminder
appears in the bell live and in the feed, in words."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, Page, expect

from mailbeacon.store.db import migrate_async
from tests.browser.test_day_one import BODY, shoot, sign_in


async def write_with_reminder(page: Page, base: str) -> None:
    await page.goto(f"{base}/mail/new")
    await page.fill("#to", "Anna Berg <anna@example.com>")
    await page.fill("#subject", "Prices 2027")
    await page.evaluate(
        """html => {
            const editor = document.getElementById("editor");
            editor.innerHTML = html;
            editor.dispatchEvent(new Event("input", {bubbles: true}));
        }""",
        BODY,
    )
    await expect(page.locator("#reminder-on")).not_to_be_checked()  # off by default
    await page.locator("#reminder-on").check()
    await page.select_option("#reminder-condition", "not_opened")
    await page.fill("#reminder-days", "3")


async def test_a_reminder_set_in_the_composer_rings_the_bell_when_the_clock_moves(
    serve_app: Any, tmp_path: Path, desktop: BrowserContext, browser: Any
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'reminder.db'}"
    await migrate_async(url)
    live = await serve_app(url)
    base = live.base_url
    page = await desktop.new_page()
    await sign_in(page, base, live.email)

    await write_with_reminder(page, base)
    await page.locator("#reminder").scroll_into_view_if_needed()
    await shoot(page, "compose-reminder-desktop")
    await page.click("button.primary[type=submit]")
    await expect(page).to_have_url(re.compile(r"/mail/\d+\?sent=1$"))
    await expect(page.locator("#live-region .alert.ok")).to_contain_text(
        "Your email was sent.", timeout=30_000
    )
    await expect(page.locator("#bell-count")).to_have_text(re.compile(r"^0?$"))

    # Three days and a minute later, as far as the reminder worker knows.
    result = await live.runtime.reminders.step(datetime.now(UTC) + timedelta(days=3, minutes=1))
    assert len(result.fired) == 1
    await expect(page.locator("#bell-count")).to_have_text("1", timeout=15_000)

    await page.goto(f"{base}/notifications")
    item = page.locator(".notify-item.unread")
    await expect(item).to_have_count(1)
    await expect(item).to_contain_text("No open from Anna Berg after 3 days: Prices 2027")
    await shoot(page, "notifications-reminder-desktop")

    phone = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        small = await phone.new_page()
        await sign_in(small, base, live.email)
        await write_with_reminder(small, base)
        await small.locator("#reminder").scroll_into_view_if_needed()
        width = await small.evaluate("document.documentElement.scrollWidth")
        assert width <= 390
        await shoot(small, "compose-reminder-phone")
        await small.goto(f"{base}/notifications")
        await shoot(small, "notifications-reminder-phone")
        await small.goto(f"{base}/settings")
        await small.locator("#reminder-default").scroll_into_view_if_needed()
        await shoot(small, "settings-reminder-phone")
    finally:
        await phone.close()
    await page.goto(f"{base}/settings")
    await shoot(page, "settings-reminder-desktop")
