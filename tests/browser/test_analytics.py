"""B6 in real Chromium at desktop and phone widths: the analytics page draws its charts
for a seeded history, each chart's table holds the numbers the chart shows, and the
CSV link downloads the same numbers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, expect

from mailbeacon.store.db import migrate_async
from tests.browser.conftest import screenshot_path
from tests.browser.test_day_one import sign_in
from tests.test_web_analytics import PERIOD, PRICING, ZONE, read_csv, seed_history, set_zone

SHOOT = os.environ.get("MAILBEACON_SCREENSHOTS") == "1"
DESKTOP_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


@pytest.mark.parametrize("width", [1280, 390])
async def test_charts_render_and_their_tables_match_at(
    serve_app: Any, tmp_path: Path, browser: Browser, width: int
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'analytics.db'}"
    await migrate_async(url)
    live = await serve_app(url)
    other_id, _ = await live.add_user("other@example.com")
    await seed_history(url, live.user_id, other_id)
    await set_zone(url, live.user_id, ZONE)
    context = await browser.new_context(
        viewport={"width": width, "height": 900},
        locale="en-US",
        user_agent=DESKTOP_AGENT,
        is_mobile=width < 500,
        accept_downloads=True,
    )
    context.set_default_timeout(15_000)
    errors: list[str] = []
    try:
        page = await context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await sign_in(page, live.base_url, live.email)
        # The menu leads there.
        await page.locator("nav.mainnav a", has_text="Analytics").click()
        await expect(page.locator("h1")).to_have_text("Analytics")
        await page.goto(f"{live.base_url}/analytics?{PERIOD}")

        # Each chart is drawn for wide and for narrow screens; the page shows one.
        shown, hidden = ("", "-narrow") if width > 640 else ("-narrow", "")
        for name in ("volume", "rates", "first-open", "links"):
            chart = page.locator(f"svg#chart-{name}{shown}")
            await expect(chart).to_be_visible()
            await expect(page.locator(f"svg#chart-{name}{hidden}")).to_be_hidden()
            box = await chart.bounding_box()
            assert box is not None and box["width"] > 300 and box["height"] > 50
            assert await chart.get_attribute("role") == "img"
            labelled = await chart.evaluate(
                "svg => svg.getAttribute('aria-labelledby').split(' ')"
                ".map(id => document.getElementById(id).textContent)"
            )
            assert labelled[0] and labelled[1]
        # Bars as in the table: Sent and Delivered per day (3+2 bars, 2+2, 1+1).
        bars = page.locator(f"svg#chart-volume{shown} g.marks rect")
        await expect(bars.and_(page.locator(".series-0"))).to_have_count(3)
        await expect(bars.and_(page.locator(".series-1"))).to_have_count(3)
        titles = await bars.locator("title").all_text_contents()
        assert titles == [
            "Mar 2, Sent: 3",
            "Mar 2, Delivered: 2",
            "Mar 3, Sent: 2",
            "Mar 3, Delivered: 2",
            "Mar 4, Sent: 1",
            "Mar 4, Delivered: 1",
        ]
        rate_dots = await page.locator(f"svg#chart-rates{shown} circle title").all_text_contents()
        assert "Mar 2, Open rate: 50%" in rate_dots
        assert "Mar 3, Open rate: 100%" in rate_dots

        # The table under the chart holds the same numbers.
        block = page.locator("#block-volume")
        await block.locator("summary").click()
        table = block.locator("table#table-volume")
        await expect(table).to_be_visible()
        rows = await table.locator("tbody tr").evaluate_all(
            "rows => rows.map(r => [...r.cells].map(c => c.textContent.trim()))"
        )
        assert rows == [
            ["Mar 2, 2026", "3", "2"],
            ["Mar 3, 2026", "2", "2"],
            ["Mar 4, 2026", "1", "1"],
        ]
        link_bar = page.locator(f"svg#chart-links{shown} rect title")
        await expect(link_bar).to_have_text(f"{PRICING}: 1")

        # The CSV link downloads the same numbers.
        async with page.expect_download() as waiting:
            await block.locator("a.csv-link").click()
        download = await waiting.value
        saved = tmp_path / "volume.csv"
        await download.save_as(saved)
        assert read_csv(saved.read_text("utf-8")) == [
            ["Day", "Sent", "Delivered"],
            ["2026-03-02", "3", "2"],
            ["2026-03-03", "2", "2"],
            ["2026-03-04", "1", "1"],
        ]

        # Nothing spills sideways on a phone: the page is as wide as the screen.
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        assert not [e for e in errors if "Content Security Policy" in e], errors

        if SHOOT:
            await block.locator("summary").click()  # closed again, as a visitor finds it
            height = await page.evaluate("document.documentElement.scrollHeight")
            await page.set_viewport_size({"width": width, "height": max(height, 200)})
            await page.wait_for_timeout(300)
            kind = "desktop" if width > 500 else "phone"
            await page.screenshot(path=screenshot_path(f"analytics-{kind}"))
    finally:
        await context.close()
