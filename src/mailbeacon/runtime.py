"""The long-lived services of one MailBeacon process, started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.ext.asyncio import AsyncEngine

from mailbeacon.core.tokens import KeyRing
from mailbeacon.mail.outbox import Outbox
from mailbeacon.mail.sending import Sender
from mailbeacon.mail.smtp import SmtpTarget
from mailbeacon.processor.derive import run_forever
from mailbeacon.settings import Settings
from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.hitlog import HitLog
from mailbeacon.store.mailboxes import load_mailbox, mailbox_password
from mailbeacon.store.tables import User

log = logging.getLogger(__name__)


class Runtime:
    """Engine, hit log, outbox, sender and processor, wired from settings."""

    def __init__(self, settings: Settings, *, run_processor: bool = True) -> None:
        self.settings = settings
        self.engine: AsyncEngine = make_engine(settings.effective_database_url)
        self.keys: KeyRing = settings.key_ring()
        self.fernet = settings.fernet()
        self.hits = HitLog(
            self.engine,
            settings.spool_dir,
            legacy_spool=settings.spool_path,
            confirm_timeout=settings.hit_confirm_timeout,
        )
        self.outbox: Outbox | None = None
        if not settings.smtp_url:
            self.outbox = Outbox(self.engine, port=settings.outbox_port)
        self.sender = Sender(self.engine, self.keys, settings.public_url, self.smtp_target_for)
        self._run_processor = run_processor
        self._stop = asyncio.Event()
        self._processor: asyncio.Task[None] | None = None

    async def smtp_target_for(self, user: User) -> SmtpTarget:
        """Where a user's mail goes: their own mailbox, the server's, else the outbox."""
        async with sessions(self.engine)() as db:
            mailbox = await load_mailbox(db, user.id)
        if mailbox is not None:
            return SmtpTarget(
                host=mailbox.host,
                port=mailbox.port,
                security=mailbox.security,
                username=mailbox.username,
                password=mailbox_password(self.fernet, mailbox),
            )
        return self.default_smtp_target()

    def default_smtp_target(self) -> SmtpTarget:
        """The server-wide SMTP_URL, or the embedded outbox when none is set."""
        if self.settings.smtp_url:
            return SmtpTarget.from_url(self.settings.smtp_url)
        assert self.outbox is not None
        return SmtpTarget.from_url(self.outbox.url)

    async def start(self) -> None:
        """Start everything; the order makes hits durable before anything can arrive."""
        await self.hits.start()
        if self.outbox is not None:
            await self.outbox.start()
        if self._run_processor:
            self._stop.clear()
            self._processor = asyncio.create_task(
                run_forever(self.engine, self.settings.process_interval, self._stop),
                name="processor",
            )

    async def stop(self) -> None:
        """Stop in reverse order, writing out every pending hit first."""
        await self.hits.stop()
        if self._processor is not None:
            self._stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._processor
            self._processor = None
        if self.outbox is not None:
            await self.outbox.stop()
        await self.engine.dispose()
