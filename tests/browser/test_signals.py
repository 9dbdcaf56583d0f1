"""Honest signals in real Chromium (B3, B4), at desktop and phone widths: the folded
machine events open on a click and give their reasons, and hovering or focusing a
copy's open icon says how it was opened, in words."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from tests.conftest import LiveApp, SmtpRecorder
from tests.test_web_signals import seed
from tests.web_helpers import sign_in


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("width", [1280, 390])
async def test_machine_events_unfold_and_tooltips_say_the_status(
    live: LiveApp, smtp_server: SmtpRecorder, browser: Browser, width: int
) -> None:
    seeded = await seed(live)
    session = await sign_in(live, live.email)
    cookie = session.client.cookies.get("mb_session")
    await session.aclose()
    assert cookie
    context = await browser.new_context(viewport={"width": width, "height": 900}, locale="en-US")
    context.set_default_timeout(15_000)
    try:
        await context.add_cookies([{"name": "mb_session", "value": cookie, "url": live.base_url}])
        page = await context.new_page()
        await page.goto(f"{live.base_url}/mail/{seeded.message_id}", wait_until="load")

        folded = page.locator("details.machine-events")
        reason = folded.get_by_text("Apple Mail Privacy Protection loads images when mail arrives")
        assert not await reason.is_visible()  # folded until asked for
        await folded.locator("summary").click()
        await expect(folded).to_have_js_property("open", True)
        assert await reason.is_visible()
        assert await folded.get_by_text("Every link of the email was clicked at once.").is_visible()
        repeats = page.locator("details.repeats")
        await repeats.locator("summary").click()
        assert await repeats.locator("tbody tr").count() == 1

        anna = seeded.ids["anna@example.com"]
        icon = page.locator(f"#icon-r{anna}-open")
        tip = page.locator(f"#tip-r{anna}-open")
        assert not await tip.is_visible()
        await icon.scroll_into_view_if_needed()
        await icon.hover()
        assert await tip.is_visible()
        text = await tip.inner_text()
        assert "Opened by a person" in text and "Opened 1 time" in text
        await page.mouse.move(0, 0)
        cleo = seeded.ids["cleo@example.com"]
        await page.locator(f"#icon-r{cleo}-open").focus()  # the keyboard shows it too
        assert "images blocked" in await page.locator(f"#tip-r{cleo}-open").inner_text()
        # Nothing of the page spills sideways at either width.
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1
    finally:
        await context.close()
