"""The long-lived services of one MailBeacon process, started and stopped together.

Two roles, which one process may combine (tests, `serve --no-worker` off):
- serving: the hit log behind the collector, the sender that queues mail, and
  a `CpuPool` for the request checks that parse bodies (DESIGN rule 1);
- working (`run_worker`): the processor, the send worker, the inbox watch
  (replies and bounces, B11), the embedded outbox when no SMTP_URL is set
  (it lives where the mail is sent from), and the SMTP submission service for
  mail clients when a submission port is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from mailbeacon.core.tokens import KeyRing
from mailbeacon.cpupool import CpuPool, preload
from mailbeacon.mail.destinations import (
    RefusedDestination,
    UnreachableDestination,
    check_destination,
)
from mailbeacon.mail.inbox import InboxWatcher, configured_accounts
from mailbeacon.mail.outbox import Outbox, read_target
from mailbeacon.mail.reminders import ReminderWorker
from mailbeacon.mail.sending import Sender
from mailbeacon.mail.sentfolder import SentFolder
from mailbeacon.mail.smtp import SmtpTarget
from mailbeacon.mail.submission import SubmissionHandler, SubmissionServer
from mailbeacon.mail.worker import SendWorker
from mailbeacon.processor.derive import judging_rules, run_forever
from mailbeacon.settings import Settings
from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.hitlog import HitLog
from mailbeacon.store.mailboxes import load_mailbox, mailbox_password
from mailbeacon.store.reminders import FiredReminder
from mailbeacon.store.tables import User

log = logging.getLogger(__name__)

# Processes for request checks (parsing bodies): two answer a preview while a send is checked.
CPU_WORKERS = 2
preload(["mailbeacon.mail.prepare", "mailbeacon.mail.delivery", "mailbeacon.mail.submission"])


def outbox_address_file(settings: Settings) -> Path:
    """Where the running outbox leaves its address and per-run secret (mode 0600)."""
    return settings.var_dir / "outbox.json"


class Runtime:
    """Engine, hit log, sender and, with `run_worker`, processor, send worker and outbox."""

    def __init__(
        self, settings: Settings, *, run_worker: bool = True, serve_hits: bool = True
    ) -> None:
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
        self._serve_hits = serve_hits
        self.cpu = CpuPool(workers=CPU_WORKERS, nice=5)
        # Present whenever there is an outbox (pages link to it); started only by the worker.
        self.outbox: Outbox | None = None
        if not settings.smtp_url:
            self.outbox = Outbox(
                self.engine,
                port=settings.outbox_port,
                address_file=outbox_address_file(settings),
            )
        self.send_worker: SendWorker | None = None
        # Follow-up reminders (B5): notifications, and emails through the user's own target.
        self.reminders: ReminderWorker | None = None
        # Replies and bounces from each user's inbox (B11), beside the send worker.
        self.inbox: InboxWatcher | None = None
        if run_worker:
            self.inbox = InboxWatcher(
                self.engine,
                configured_accounts(
                    self.engine, self.fernet, allow_private=settings.smtp_allow_private
                ),
            )
            self.send_worker = SendWorker(
                self.engine,
                self.keys,
                settings.public_url,
                self.smtp_target_for_user,
                sent_folder=SentFolder(
                    self.engine, self.fernet, allow_private=settings.smtp_allow_private
                ),
            )
            self.reminders = ReminderWorker(
                self.engine, self.smtp_target_for_user, self._reminder_wording
            )
        self.sender = Sender(
            self.engine,
            settings.public_url,
            self.cpu,
            on_queued=self.send_worker.wake if self.send_worker else None,
        )
        # The SMTP submission service for mail clients (B12): in the worker, when a port is set.
        self.submission: SubmissionServer | None = None
        if run_worker and (settings.submission_port or settings.submission_tls_port):
            self.submission = self._submission_server()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def _submission_server(self) -> SubmissionServer:
        settings = self.settings
        handler = SubmissionHandler(
            self.engine,
            self.cpu,
            settings.public_url,
            on_queued=self.send_worker.wake if self.send_worker else None,
        )
        return SubmissionServer(
            handler,
            settings.submission_ssl_context(),
            host=settings.submission_host,
            port=settings.submission_port or None,
            tls_port=settings.submission_tls_port or None,
            hostname=settings.submission_name,
        )

    def _reminder_wording(self, fired: FiredReminder) -> tuple[str, str]:
        """The reminder email's words come from the web layer's translations."""
        from mailbeacon.web.reminders_text import reminder_email

        return reminder_email(fired, self.settings.public_url)

    async def smtp_target_for(self, user: User) -> SmtpTarget:
        """Where a user's mail goes: their own mailbox, the server's, else the outbox."""
        return await self.smtp_target_for_user(user.id)

    async def smtp_target_for_user(self, user_id: int) -> SmtpTarget:
        async with sessions(self.engine)() as db:
            mailbox = await load_mailbox(db, user_id)
        if mailbox is not None:
            target = SmtpTarget(
                host=mailbox.host,
                port=mailbox.port,
                security=mailbox.security,
                username=mailbox.username,
                password=mailbox_password(self.fernet, mailbox),
            )
            return await self._checked(target)
        return self.default_smtp_target()

    async def _checked(self, target: SmtpTarget) -> SmtpTarget:
        """A user's own mailbox, held to the same rule as "send test email".

        Users type these host names, so they must not reach loopback, private or
        metadata addresses (unless SMTP_ALLOW_PRIVATE); SMTP_URL and the outbox
        are the operator's choice and are not checked.
        """
        try:
            checked = await check_destination(
                target.host, target.port, allow_private=self.settings.smtp_allow_private
            )
        except RefusedDestination:
            return replace(
                target,
                refusal=(
                    f"the mailbox's server {target.host} is on a private or local network, "
                    "which this MailBeacon server does not allow"
                ),
            )
        except UnreachableDestination:
            return target  # the connection fails in turn and is retried later
        return replace(target, connect_address=checked[0].address)

    def default_smtp_target(self) -> SmtpTarget:
        """The server-wide SMTP_URL, or the embedded outbox when none is set.

        The outbox may run in another process of ours (the worker): then its
        address and secret come from the file it keeps under var_dir.
        """
        if self.settings.smtp_url:
            return SmtpTarget.from_url(self.settings.smtp_url)
        assert self.outbox is not None
        if self.outbox.running:
            return self.outbox.target
        found = read_target(outbox_address_file(self.settings))
        return found or SmtpTarget(self.outbox.host, self.settings.outbox_port or 25, outbox=True)

    async def start(self) -> None:
        """Start everything; the order makes hits durable before anything can arrive."""
        if self._serve_hits:
            await self.hits.start()
        self._stop.clear()
        if self.send_worker is not None:
            if self.outbox is not None:
                await self.outbox.start()
            if self.submission is not None:
                await self.submission.start()
            self._tasks.append(
                asyncio.create_task(self.send_worker.run_forever(self._stop), name="send-worker")
            )
            self._tasks.append(
                asyncio.create_task(
                    run_forever(
                        self.engine,
                        self.settings.process_interval,
                        self._stop,
                        judging_rules(
                            self.settings.signal_settle_seconds,
                            self.settings.scanner_click_seconds,
                        ),
                    ),
                    name="processor",
                )
            )
            if self.reminders is not None:
                self._tasks.append(
                    asyncio.create_task(self.reminders.run_forever(self._stop), name="reminders")
                )
            if self.inbox is not None:
                self._tasks.append(
                    asyncio.create_task(self.inbox.run_forever(self._stop), name="inbox")
                )

    async def drain(self) -> int:
        """Deliver every queued message that is due now, then stop (`worker --until-idle`)."""
        assert self.send_worker is not None
        if self.outbox is not None:
            await self.outbox.start()
        worked = 0
        try:
            while await self.send_worker.run_once():
                worked += 1
        finally:
            await self.send_worker.close()
            await self.stop()
        return worked

    async def wait(self) -> None:
        """Until the background tasks end (a worker process runs until stopped)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def request_stop(self) -> None:
        self._stop.set()

    async def stop(self) -> None:
        """Stop in reverse order, writing out every pending hit first.

        The send worker finishes the copy it is handing over, then stops.
        """
        if self._serve_hits:
            await self.hits.stop()
        if self.submission is not None:
            await self.submission.stop()
        self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.outbox is not None:
            await self.outbox.stop()
        await self.cpu.close()
        await self.engine.dispose()
