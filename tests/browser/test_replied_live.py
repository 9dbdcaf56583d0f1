"""B11 in real Chromium: set up IMAP in Settings, send, a reply lands in the inbox
(APPENDed to Dovecot), and the mail list shows "replied" live, without a reload,
with the sender and time in the tooltip; the bell counts it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.async_api import BrowserContext, expect
from sqlalchemy import select

from mailbeacon.store.db import make_engine, migrate_async, sessions
from mailbeacon.store.mailboxes import save_mailbox
from mailbeacon.store.tables import Message
from tests.browser.test_day_one import compose_and_send, sign_in
from tests.conftest import SmtpRecorder
from tests.dovecot import MAIL_PASSWORD, MAIL_USER, DovecotServer
from tests.test_inbox_replies import raw


async def test_replied_appears_live_in_the_mail_list(
    serve_app: Any,
    tmp_path: Path,
    desktop: BrowserContext,
    smtp_server: SmtpRecorder,
    dovecot: DovecotServer,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'replied.db'}"
    await migrate_async(url)
    live = await serve_app(url)
    engine = make_engine(url)
    try:
        async with sessions(engine)() as db, db.begin():  # SMTP is another test's subject
            await save_mailbox(
                db,
                live.settings.fernet(),
                live.user_id,
                host=smtp_server.host,
                port=smtp_server.port,
                security="none",
                username="",
                password="",
            )
        base = live.base_url
        page = await desktop.new_page()
        await sign_in(page, base, live.email)

        # IMAP, as a user sets it up in Settings > Mailbox.
        await page.goto(f"{base}/settings/mailbox")
        await page.fill("input[name=imap_host]", dovecot.host)
        await page.fill("input[name=imap_port]", str(dovecot.port))
        await page.select_option("select[name=imap_security]", "none")
        await page.fill("input[name=imap_username]", MAIL_USER)
        await page.fill("input[name=imap_password]", MAIL_PASSWORD)
        await page.locator("form[action$='/settings/mailbox/imap'] button[type=submit]").click()
        live.runtime.inbox.wake()  # the worker would see it at its next rescan anyway

        message_id = await compose_and_send(page, base)
        await page.goto(f"{base}/mail")
        row = page.locator(f"tr[data-message-id='{message_id}']")
        await expect(row.locator(".track-reply")).to_have_class(re.compile(r"\bfaded\b"))
        await page.evaluate("window.__stillTheSamePage = true")

        async with sessions(engine)() as db:
            ours = await db.scalar(
                select(Message.message_id_header).where(Message.id == int(message_id))
            )
        dovecot.append(
            MAIL_USER,
            "INBOX",
            raw(
                f"From: Anna Berg <anna@example.com>\nTo: {live.email}\nSubject: Re: Pricing\n"
                f"Message-ID: <r1@example.com>\nIn-Reply-To: {ours}\nReferences: {ours}"
            ),
        )

        await expect(row.locator(".track-reply")).to_have_class(
            re.compile(r"\bsolid\b"), timeout=30_000
        )
        await expect(page.locator("#bell-count")).to_have_text("1")
        assert await page.evaluate("window.__stillTheSamePage === true")
        await row.locator(".track-reply").hover()
        tip = row.locator(".track-reply .tip")
        await expect(tip).to_be_visible()
        await expect(tip).to_contain_text("Replied 1 time")
        await expect(tip).to_contain_text("Anna Berg")
    finally:
        await engine.dispose()
