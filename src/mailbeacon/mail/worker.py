"""The send worker: takes messages off the durable queue and delivers them, one copy at a time.

It runs in the `mailbeacon worker` process (which `serve` starts beside the
web process) or, in tests and with nothing else configured, as a task of the
app's own runtime. Either way its event loop only coordinates: the copies are
rendered and handed to the mail server in the delivery process
(`mail.delivery`), and every database step is one short transaction
(`store.sendqueue`), so no lock is held while a copy is built or sent.

Retries: a 4xx reply or a lost connection puts the copy back in the queue for
`RETRY_DELAYS[n]` seconds after its n-th attempt; when they run out the copy
fails with the last answer. A server that cannot be reached delays every
waiting copy of the message. A 5xx reply fails that copy at once, with the
server's words.

Restarts: the claim is a lease renewed while the worker works. A worker that
stops (or dies) leaves its copies either queued (sent again later, safely) or
"sending" (its SMTP transaction may have completed): the next holder records
those as "unknown" and never sends them again: at most once per copy.

Sent folder: when every copy of a message has its outcome, the message's clean
copy becomes due for the user's Sent folder; the worker's `SentFolder`
(mail.sentfolder) saves it over IMAP in a task of its own, so a slow IMAP
server never holds up the next message's delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from mailbeacon.core.tokens import KeyRing
from mailbeacon.cpupool import CpuPool
from mailbeacon.mail.delivery import CopyOrder, Outcome, deliver_copy, forget
from mailbeacon.mail.sentfolder import SentFolder
from mailbeacon.mail.smtp import SmtpTarget
from mailbeacon.store import sendqueue, sentcopies
from mailbeacon.store.sendqueue import CopyTarget, QueuedMessage

log = logging.getLogger(__name__)

# Seconds to wait before the 2nd, 3rd, ... attempt of a copy: about 8 hours in all.
RETRY_DELAYS: tuple[float, ...] = (1, 10, 60, 300, 900, 1800, 3600, 7200, 14400)
LEASE_SECONDS = 60.0
IDLE_POLL_SECONDS = 0.5
LOST = (
    "The delivery process stopped while sending this copy. It may or may not have been "
    "delivered, so it was not sent again."
)

TargetFor = Callable[[int], Awaitable[SmtpTarget]]


def _now() -> datetime:
    return datetime.now(UTC)


class SendWorker:
    """Claims queued messages and delivers their copies, one at a time."""

    def __init__(
        self,
        engine: AsyncEngine,
        keys: KeyRing,
        public_url: str,
        target_for: TargetFor,
        *,
        retry_delays: Sequence[float] | None = None,
        lease: float = LEASE_SECONDS,
        sent_folder: SentFolder | None = None,
    ) -> None:
        self._engine = engine
        self._sent_folder = sent_folder
        self._keys = keys
        self._public_url = public_url.rstrip("/")
        self._target_for = target_for
        self._delays = tuple(RETRY_DELAYS if retry_delays is None else retry_delays)
        self._lease = lease
        # One process: it keeps the message and the connection; low priority: pixels come first.
        self._pool = CpuPool(workers=1, nice=10)
        self._wake = asyncio.Event()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def wake(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; a copy in progress is finished first."""
        sent_folder = None
        if self._sent_folder is not None:
            sent_folder = asyncio.create_task(self._sent_folder.run_forever(stop), name="sent")
        try:
            while not stop.is_set():
                try:
                    worked = await self.run_once(stop)
                except (SQLAlchemyError, OSError):
                    log.warning("send worker: database unavailable", exc_info=True)
                    worked = False
                except Exception:  # one bad job must not stop every later send
                    log.exception("send worker: a round failed; the job is retried")
                    worked = False
                if not worked:
                    await self._idle(stop)
        finally:
            if sent_folder is not None:
                await asyncio.gather(sent_folder, return_exceptions=True)
            await self.close()

    async def close(self) -> None:
        """Stop the delivery process (after the copy it may be sending)."""
        await self._pool.close()

    async def _idle(self, stop: asyncio.Event) -> None:
        self._wake.clear()
        waiters = {asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())}
        try:
            await asyncio.wait(waiters, timeout=IDLE_POLL_SECONDS, return_when="FIRST_COMPLETED")
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def run_once(self, stop: asyncio.Event | None = None) -> bool:
        """Claim one due message and work on it; False when nothing was due."""
        stop = stop or asyncio.Event()
        message_id = await sendqueue.claim_next(self._engine, self.owner, _now(), self._lease)
        if message_id is None:
            return False
        lost = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(message_id, lost))
        try:
            await self._send(message_id, stop, lost)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            with contextlib.suppress(BrokenProcessPool):
                await self._pool.run(forget, retry=False)
            if not lost.is_set():
                status = await sendqueue.release(self._engine, message_id, self.owner, _now())
                log.info("message %d: %s", message_id, status)
                if status in sentcopies.FINISHED:
                    await self._after_delivery(message_id, status)
        return True

    async def _after_delivery(self, message_id: int, status: str) -> None:
        """Every copy has its outcome: the clean copy for Sent is due (mail.sentfolder)."""
        await sentcopies.mark_delivered(self._engine, message_id, status, _now())
        if self._sent_folder is not None:
            self._sent_folder.wake()

    async def _heartbeat(self, message_id: int, lost: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(self._lease / 3)
            try:
                ours = await sendqueue.renew(
                    self._engine, message_id, self.owner, _now(), self._lease
                )
            except (SQLAlchemyError, OSError):
                continue  # the lease is still good for a while; try again
            if not ours:
                lost.set()
                return

    async def _send(self, message_id: int, stop: asyncio.Event, lost: asyncio.Event) -> None:
        interrupted = await sendqueue.settle_interrupted(self._engine, message_id, _now())
        if interrupted:
            log.warning(
                "message %d: %d copies left sending were recorded unknown", message_id, interrupted
            )
        message = await sendqueue.load_queued(self._engine, message_id)
        if message is None:
            return
        target = await self._target_for(message.user_id)
        template: QueuedMessage | None = message
        for copy in await sendqueue.due_copies(self._engine, message_id, _now()):
            if stop.is_set() or lost.is_set():
                return
            ok = await sendqueue.mark_sending(
                self._engine, message_id, copy.id, self.owner, _now(), self._lease
            )
            if not ok:
                lost.set()
                return
            order = CopyOrder(
                message_id, copy.id, copy.address, target, self._keys, self._public_url, template
            )
            outcome = await self._deliver(order, message)
            template = None
            await self._record(message_id, copy, outcome)
            if outcome.kind == "unreachable":
                return

    async def _deliver(self, order: CopyOrder, message: QueuedMessage) -> Outcome:
        try:
            outcome = await self._pool.run(deliver_copy, order, retry=False)
            if outcome.kind == "need_template":  # a fresh delivery process
                outcome = await self._pool.run(
                    deliver_copy, replace(order, template=message), retry=False
                )
        except BrokenProcessPool:
            return Outcome("unknown", LOST)
        return outcome

    async def _record(self, message_id: int, copy: CopyTarget, outcome: Outcome) -> None:
        now = _now()
        attempts = copy.attempts + 1
        if outcome.kind in ("sent", "failed", "unknown"):
            await sendqueue.record_outcome(
                self._engine, message_id, copy.id, outcome.kind, outcome.error, now
            )
            return
        if attempts > len(self._delays):
            error = f"gave up after {attempts} attempts; the last answer: {outcome.error}"
            await sendqueue.record_outcome(self._engine, message_id, copy.id, "failed", error, now)
            return
        retry_at = now + timedelta(seconds=self._delays[attempts - 1])
        await sendqueue.record_outcome(
            self._engine, message_id, copy.id, "queued", outcome.error, now, retry_at
        )
        if outcome.kind == "unreachable":
            await sendqueue.defer_queued(self._engine, message_id, outcome.error, retry_at)
