"""The day-one flow in real Chromium (PRODUCT.md "What a user does on day one"):
sign in, send to two recipients with both toggles, open one copy in the outbox, click a
link, watch the icon turn solid and the bell rise without a reload; filter; switch a
setting off and see its toggle vanish; change language. S3-S9, S13, B5, B8."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, Page, expect

from mailbeacon.store.db import migrate_async
from tests.browser.conftest import screenshot_path
from tests.web_helpers import PASSWORD

SHOOT = os.environ.get("MAILBEACON_SCREENSHOTS") == "1"
BODY = (
    '<p>Hello Anna and Ben,</p><p>Here is the <a href="https://example.com/pricing">'
    "pricing for 2027</a> we talked about.</p><p>Best regards</p>"
)


async def shoot(page: Page, name: str) -> None:
    """Keep a screenshot for the README when asked to (`make screenshots`)."""
    if not SHOOT:
        return
    # A viewport as tall as the page, rather than full_page=True: Chromium leaves
    # sandboxed mail frames blank in stitched full-page shots.
    viewport = page.viewport_size or {"width": 1280, "height": 860}
    height = await page.evaluate("document.documentElement.scrollHeight")
    await page.set_viewport_size({"width": viewport["width"], "height": max(height, 200)})
    await page.wait_for_timeout(300)
    await page.screenshot(path=screenshot_path(name))
    await page.set_viewport_size(viewport)


async def sign_in(page: Page, base_url: str, email: str) -> None:
    await page.goto(f"{base_url}/login")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(re.compile(r"/mail$"))


async def compose_and_send(page: Page, base_url: str) -> str:
    await page.goto(f"{base_url}/mail/new")
    await page.fill("#to", "Anna Berg <anna@example.com>, ben@example.com")
    await page.fill("#subject", "Pricing for 2027")
    await page.evaluate(
        """html => {
            const editor = document.getElementById("editor");
            editor.innerHTML = html;
            editor.dispatchEvent(new Event("input", {bubbles: true}));
        }""",
        BODY,
    )
    await expect(page.locator("input[name=track_opens]")).to_be_checked()
    await expect(page.locator("input[name=track_links]")).to_be_checked()
    # The live preview catches up with the body: nothing left that will not be tracked.
    await expect(page.locator("#tracking-preview")).not_to_contain_text("body is empty")
    await expect(page.locator("#tracking-preview")).not_to_contain_text("no web links")
    await shoot(page, "compose-desktop")
    await page.click("button.primary[type=submit]")
    await expect(page).to_have_url(re.compile(r"/mail/\d+\?sent=1$"))
    # Queued at once; the page follows delivery live, without a reload.
    await expect(page.locator("#live-region .alert.ok")).to_contain_text(
        "Your email was sent.", timeout=30_000
    )
    return page.url.split("/mail/")[1].split("?")[0]


async def open_as_recipient(context: BrowserContext, base_url: str, address: str) -> None:
    """Play the recipient: open their copy in the outbox, then click the link in it."""
    page = await context.new_page()
    await page.goto(f"{base_url}/outbox")
    row = page.locator("tr", has_text=address)
    await row.locator("a").first.click()
    frame = page.frame_locator("iframe.outbox-frame")
    await expect(frame.locator("a", has_text="pricing for 2027")).to_be_visible()
    await shoot(page, "outbox-desktop")
    async with page.expect_popup() as popup:
        await frame.locator("a", has_text="pricing for 2027").click()
    reader = await popup.value
    await reader.close()
    await page.close()


async def test_day_one(serve_app: Any, tmp_path: Path, desktop: BrowserContext) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'day-one.db'}"
    await migrate_async(url)
    live = await serve_app(url)  # no SMTP server: the embedded outbox catches the mail
    base = live.base_url
    page = await desktop.new_page()

    await sign_in(page, base, live.email)
    await expect(page.locator(".empty")).to_contain_text("Send your first tracked email")
    await shoot(page, "mail-empty-desktop")
    message_id = await compose_and_send(page, base)
    # The email as sent, without tracking: rendered, and it fires nothing.
    sent_copy = page.frame_locator("iframe.mail-frame")
    await expect(sent_copy.locator("a", has_text="pricing for 2027")).to_be_visible()
    await shoot(page, "message-desktop")

    # The sender watches the mail list; nothing has happened yet.
    await page.goto(f"{base}/mail")
    row = page.locator(f"tr[data-message-id='{message_id}']")
    await expect(row.locator(".track-open")).to_have_class(re.compile(r"\bfaded\b"))
    await expect(row.locator(".track-click")).to_have_class(re.compile(r"\bfaded\b"))
    await page.evaluate("window.__stillTheSamePage = true")

    await open_as_recipient(desktop, base, "anna@example.com")

    # Live: the bell counts the open and the click, and the icons turn solid, no reload.
    await expect(page.locator("#bell-count")).to_have_text("2", timeout=20_000)
    await expect(row.locator(".track-open")).to_have_class(re.compile(r"\bsolid\b"))
    await expect(row.locator(".track-click")).to_have_class(re.compile(r"\bsolid\b"))
    assert await page.evaluate("window.__stillTheSamePage === true")
    await row.locator(".track-open").hover()
    tip = row.locator(".track-open .tip")
    await expect(tip).to_be_visible()
    await expect(tip).to_contain_text("Anna Berg")
    await shoot(page, "mail-list-desktop")
    await row.locator(".track-click").focus()  # keyboard users get the same details
    await expect(row.locator(".track-click .tip")).to_contain_text("example.com/pricing")

    # S8: the contact view shows the same icons, for that person's copy.
    await page.goto(f"{base}/contacts/anna@example.com")
    await expect(page.locator(".track-open").first).to_have_class(re.compile(r"\bsolid\b"))
    await shoot(page, "contact-desktop")
    await page.goto(f"{base}/contacts/ben@example.com")
    await expect(page.locator(".track-open").first).to_have_class(re.compile(r"\bfaded\b"))
    await page.goto(f"{base}/mail")

    # S13: the "Tracked emails" filter.
    await page.click("text=Tracked emails")
    await expect(page).to_have_url(re.compile(r"tracked=1"))
    await expect(page.locator(f"tr[data-message-id='{message_id}']")).to_be_visible()

    await page.goto(f"{base}/notifications")
    await expect(page.locator("main")).to_contain_text("Anna Berg")
    await shoot(page, "notifications-desktop")

    # S4/S5: switch open tracking off; its toggle leaves the composer.
    await page.goto(f"{base}/settings")
    await shoot(page, "settings-desktop")
    await page.locator("input[name=open_tracking]").uncheck()
    await (
        page.locator("form", has=page.locator("input[name=open_tracking]"))
        .locator("button[type=submit]")
        .first.click()
    )
    await page.goto(f"{base}/mail/new")
    await expect(page.locator("input[name=track_links]")).to_be_visible()
    await expect(page.locator("input[name=track_opens]")).to_have_count(0)

    # B8: the user's language.
    await page.goto(f"{base}/settings")
    await page.select_option("select[name=language]", "de")
    await (
        page.locator("form", has=page.locator("select[name=language]"))
        .locator("button[type=submit]")
        .first.click()
    )
    await page.goto(f"{base}/mail")
    await expect(page.locator("html")).to_have_attribute("lang", "de")
    await expect(page.locator("nav.mainnav")).to_contain_text("Einstellungen")


async def test_phone_width(serve_app: Any, tmp_path: Path, browser: Any) -> None:
    """The main pages work at phone width: nothing wider than the screen."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'phone.db'}"
    await migrate_async(url)
    live = await serve_app(url)
    context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = await context.new_page()
        await sign_in(page, live.base_url, live.email)
        message_id = await compose_and_send(page, live.base_url)
        for name, path in [
            ("mail-list-phone", "/mail"),
            ("message-phone", f"/mail/{message_id}"),
            ("compose-phone", "/mail/new"),
            ("settings-phone", "/settings"),
        ]:
            await page.goto(f"{live.base_url}{path}")
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"{path} is {overflow}px wider than the phone"
            await shoot(page, name)
    finally:
        await context.close()
