"""IMAP in the mailbox settings, in real Chromium (S12, B2): fill in the form, save, press
"Test connection" and read what was found (the Sent folder, the inbox, IDLE, SPECIAL-USE);
a wrong password reads as a sentence, and stays on the page after a reload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, expect

from mailbeacon.store.db import migrate_async
from tests.browser.test_day_one import shoot, sign_in
from tests.dovecot import MAIL_PASSWORD, MAIL_USER, DovecotServer


async def test_imap_settings_and_test_connection(
    serve_app: Any, tmp_path: Path, desktop: BrowserContext, dovecot: DovecotServer
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'imap.db'}"
    await migrate_async(url)
    live = await serve_app(url)
    page = await desktop.new_page()
    await sign_in(page, live.base_url, live.email)

    await page.goto(f"{live.base_url}/settings/mailbox")
    smtp = page.locator("form[action$='/settings/mailbox']")
    await smtp.locator("input[name=host]").fill("127.0.0.1")
    await smtp.locator("input[name=port]").fill("2525")
    await smtp.locator("select[name=security]").select_option("none")
    await smtp.locator("button[type=submit]").click()
    await expect(page.locator(".alert.ok, .notice").first).to_contain_text("Your mailbox is saved")

    imap = page.locator("form[action$='/settings/mailbox/imap']")
    await imap.locator("input[name=imap_host]").fill(dovecot.host)
    await imap.locator("input[name=imap_port]").fill(str(dovecot.port))
    await imap.locator("select[name=imap_security]").select_option("none")
    await imap.locator("input[name=imap_username]").fill(MAIL_USER)
    await imap.locator("input[name=imap_password]").fill("not the password")
    await imap.locator("button[type=submit]").click()
    await expect(page.get_by_text("Your IMAP settings are saved.")).to_be_visible()

    await page.get_by_role("button", name="Test connection").click()
    failed = page.locator(".imap-test.alert.error")
    await expect(failed).to_contain_text(
        f"The connection to 127.0.0.1:{dovecot.port} did not work."
    )
    await expect(failed).to_contain_text("did not accept the user name and password")
    await page.goto(f"{live.base_url}/settings/mailbox")
    await expect(page.locator(".imap-last.alert.error")).to_contain_text(
        "did not accept the user name and password"
    )

    imap = page.locator("form[action$='/settings/mailbox/imap']")
    await imap.locator("input[name=imap_password]").fill(MAIL_PASSWORD)
    await imap.locator("button[type=submit]").click()
    await page.get_by_role("button", name="Test connection").click()
    found = page.locator(".imap-test.alert.ok")
    await expect(found).to_contain_text(f"Connected to 127.0.0.1:{dovecot.port} and signed in.")
    await expect(found.locator(".imap-sent")).to_have_text("Sent")
    await expect(found.locator(".imap-inbox")).to_have_text("INBOX")
    await expect(found).to_contain_text("Yes: replies are seen within seconds")
    await expect(found).to_contain_text("Yes: the server names its Sent folder")
    # The password never comes back to the page.
    await expect(page.locator("input[name=imap_password]")).to_have_value("")
    await shoot(page, "settings-imap-desktop")
