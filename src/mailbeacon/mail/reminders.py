"""The reminder worker (B5): raises due follow-up reminders, once each.

A task of the worker process beside the send worker (runtime.py). Each step:
1. closes every pending reminder whose reader opened, clicked or replied
   ("met": it stops at once, due or not);
2. for each reminder due by `now`, asks core.reminders.decide and fires,
   closes or leaves it; firing is a conditional UPDATE that raises the
   notification in the same transaction (store.reminders.fire), so a
   restart, or a second worker, never fires one twice;
3. for a fired reminder whose user asked for it, emails the user themselves
   through their own SMTP target, after the commit. The email is marked
   "sending" under the claim, so it goes at most once (a worker that dies
   between commit and hand-over loses that email, never the notification).

All state is in the database: a restarted worker picks up where it was.
Tests call `step(now)` with the clock they want instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from mailbeacon.core.reminders import Action, State, decide
from mailbeacon.mail.smtp import Delivery, SmtpTarget, deliver
from mailbeacon.store import reminders
from mailbeacon.store.reminders import FiredReminder

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 30.0
BATCH = 100

TargetFor = Callable[[int], Awaitable[SmtpTarget]]
# (subject, plain-text body) of the email to the user, in their language (built by the web layer).
Wording = Callable[[FiredReminder], tuple[str, str]]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class StepResult:
    """What one step did (tests and logs read it)."""

    fired: list[int] = field(default_factory=list)
    met: int = 0
    cancelled: int = 0
    emailed: int = 0


class ReminderWorker:
    """Fires due reminders: notifications always, an email when asked."""

    def __init__(
        self,
        engine: AsyncEngine,
        target_for: TargetFor,
        wording: Wording,
        *,
        interval: float = INTERVAL_SECONDS,
    ) -> None:
        self._engine = engine
        self._target_for = target_for
        self._wording = wording
        self._interval = interval

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Step every `interval` seconds until `stop`; a failing step is logged and retried."""
        while not stop.is_set():
            try:
                await self.step(_now())
            except (SQLAlchemyError, OSError):
                log.warning("reminders: database unavailable", exc_info=True)
            except Exception:  # one bad reminder must not stop every later one
                log.exception("reminders: a step failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._interval)

    async def step(self, now: datetime) -> StepResult:
        """Close met reminders, then fire or close every due one, as of `now`."""
        result = StepResult(met=await reminders.close_met(self._engine, now))
        after: tuple[datetime, int] | None = None
        while True:
            batch = await reminders.due(self._engine, now, BATCH, after=after)
            if not batch:
                return result
            for pending in batch:
                await self._one(pending, now, result)
            after = (batch[-1].due_at, batch[-1].id)

    async def _one(
        self, pending: reminders.PendingReminder, now: datetime, result: StepResult
    ) -> None:
        action = decide(pending.condition, pending.due_at, pending.progress, now)
        if action is Action.MET:
            result.met += await reminders.close(self._engine, pending.id, State.MET, now)
        elif action is Action.CANCEL:
            result.cancelled += await reminders.close(
                self._engine, pending.id, State.CANCELLED, now
            )
        elif action is Action.FIRE:
            fired = await reminders.fire(self._engine, pending.id, pending.condition, now)
            if fired is None:
                return  # someone else fired it, or it was met meanwhile (the next sweep says so)
            result.fired.append(fired.id)
            log.info("reminder %d fired (message %d)", fired.id, fired.message_id)
            if fired.email_me:
                result.emailed += await self._email(fired)
        # WAIT: a copy still on its way; the next step looks again.

    async def _email(self, fired: FiredReminder) -> bool:
        """Email the user themselves; the outcome is kept on the reminder."""
        subject, body = self._wording(fired)
        message = EmailMessage()
        message["From"] = formataddr((fired.user_name, fired.user_email))
        message["To"] = formataddr((fired.user_name, fired.user_email))
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain=fired.user_email.rpartition("@")[2] or None)
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(body)
        try:
            target = await self._target_for(fired.user_id)
            if target.refusal:
                error = target.refusal
            else:
                [outcome] = await deliver(
                    target, [Delivery(fired.user_email, fired.user_email, message)]
                )
                error = outcome.error
        except Exception as exc:  # the notification stands; the email is reported failed
            log.warning("reminder %d: email failed", fired.id, exc_info=True)
            error = str(exc) or type(exc).__name__
        await reminders.record_email(self._engine, fired.id, error[:1000])
        return not error
