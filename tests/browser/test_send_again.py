"""Issue 9, bug 9 in real Chromium at desktop and phone widths: a send that failed for a
recipient shows "Send again"; pressing it delivers that copy, once, and the button goes."""

from __future__ import annotations

import os

import pytest
from playwright.async_api import Browser

from tests.browser.conftest import screenshot_path
from tests.conftest import LiveApp, SmtpRecorder
from tests.helpers import delivered, eventually
from tests.web_helpers import sign_in

DESKTOP_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("width", "name"), [(1280, "desktop"), (390, "phone")])
async def test_bug9_send_again_in_the_browser(
    live: LiveApp, smtp_server: SmtpRecorder, browser: Browser, width: int, name: str
) -> None:
    smtp_server.refuse = {"down@example.com"}
    body = {"to": ["up@example.com", "down@example.com"], "subject": "Offer", "html": "<p>Hi</p>"}
    response = await live.client.post("/api/v1/messages", json=body, headers=live.auth())
    assert response.status_code == 201, response.text
    message_id = response.json()["id"]
    assert (await delivered(live.client, message_id, live.auth()))["status"] == "partial"

    session = await sign_in(live, live.email)
    cookie = session.client.cookies.get("mb_session")
    await session.aclose()
    assert cookie
    context = await browser.new_context(
        viewport={"width": width, "height": 900}, locale="en-US", user_agent=DESKTOP_AGENT
    )
    context.set_default_timeout(15_000)
    try:
        await context.add_cookies([{"name": "mb_session", "value": cookie, "url": live.base_url}])
        page = await context.new_page()
        await page.goto(f"{live.base_url}/mail/{message_id}", wait_until="load")
        button = page.get_by_role("button", name="Send again")
        await button.scroll_into_view_if_needed()
        assert await button.is_visible()
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1
        if os.environ.get("MAILBEACON_SCREENSHOTS") == "1":
            await page.screenshot(path=screenshot_path(f"message-send-again-{name}"))

        smtp_server.refuse = set()
        await button.click()
        await page.wait_for_url(f"**/mail/{message_id}?sent=1")

        async def sent() -> bool:
            detail = await delivered(live.client, message_id, live.auth())
            return bool(detail["status"] == "sent")

        await eventually(sent)
        await page.reload(wait_until="load")
        assert await page.get_by_role("button", name="Send again").count() == 0
        assert sorted(m.envelope_to[0] for m in smtp_server.mails) == [
            "down@example.com",
            "up@example.com",
        ]
    finally:
        await context.close()
