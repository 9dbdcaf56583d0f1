"""The inbox watch (B11): replies, auto-replies and bounces from each user's own mailbox.

One thread per user with IMAP set up (IMAPClient blocks, and IDLE blocks for
minutes: neither belongs on an event loop, and a long IDLE would starve the
loop's shared thread pool). Each thread signs in (mail.imap: checked address,
TLS, timeouts), selects the inbox read-only, and reads every message with a UID
above the stored position: headers first, and the first `MAX_BYTES` of the body
only where the headers say it may be a bounce (a reply's body is never fetched).
core.replies judges each one; the database work (store.replies) runs on the
worker's event loop, one transaction per batch *with the new position*, so a
restart resumes exactly after the last batch recorded: nothing lost, nothing
repeated. Then it waits: IMAP IDLE where the server offers it (re-issued every
`idle_seconds`, well under RFC 2177's 29 minutes, each round ending in a
fresh look), a poll every `poll_seconds` otherwise; either wakes within a
second of `stop`.

A new UIDVALIDITY (or the first look at a mailbox) starts over from the day
of the user's first message; the unique key of each reply (its Message-ID)
keeps that from recording anything twice. A failure is kept on the mailbox
(`inbox_error`, words for the user) and retried with a growing delay; a wrong
password or a missing folder waits longer, as trying again cannot help.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from cryptography.fernet import Fernet
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from mailbeacon.core.replies import InboxMessage, analyse, needs_body
from mailbeacon.mail.imap import SECURITY_MODES, ImapError, ImapSession, ImapTarget, connect
from mailbeacon.store import replies
from mailbeacon.store.db import sessions
from mailbeacon.store.mailboxes import imap_password
from mailbeacon.store.tables import Mailbox, Message

log = logging.getLogger(__name__)

BATCH = 50
BODY_FETCH = "BODY.PEEK[]<0.262144>"  # core.replies.MAX_BYTES
RETRY_DELAYS = (2.0, 5.0, 15.0, 60.0, 300.0)
SETTINGS_DELAY = 600.0  # a wrong password or a missing folder: retry far less often
CALL_TIMEOUT = 120.0  # longest a batch's database work may take
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class InboxAccount:
    """A user whose inbox is watched, and how to reach it."""

    user_id: int
    target: ImapTarget


Accounts = Callable[[], Awaitable[Sequence[InboxAccount]]]


@dataclass(frozen=True, slots=True)
class Position:
    """How far a user's inbox has been read."""

    uidvalidity: int | None
    last_uid: int
    since: date | None  # where to start over from (the user's first message), if needed


def _now() -> datetime:
    return datetime.now(UTC)


def configured_accounts(engine: AsyncEngine, fernet: Fernet, *, allow_private: bool) -> Accounts:
    """The users with IMAP set up in Settings (mailboxes.imap_*), read fresh each time."""

    async def accounts() -> list[InboxAccount]:
        async with sessions(engine)() as db:
            rows = (
                await db.scalars(
                    select(Mailbox).where(Mailbox.imap_host != "").order_by(Mailbox.user_id)
                )
            ).all()
        return [
            InboxAccount(
                row.user_id,
                ImapTarget(
                    host=row.imap_host,
                    port=row.imap_port,
                    security=row.imap_security,
                    username=row.imap_username,
                    password=imap_password(fernet, row),
                    sent_folder=row.imap_sent_folder,
                    inbox_folder=row.imap_inbox_folder,
                    allow_private=allow_private,
                ),
            )
            for row in rows
            if row.imap_security in SECURITY_MODES
        ]

    return accounts


class InboxWatcher:
    """Watches every configured inbox until stopped; follows settings as they change."""

    def __init__(
        self,
        engine: AsyncEngine,
        accounts: Accounts,
        *,
        poll_seconds: float = 60.0,
        idle_seconds: float = 5 * 60.0,
        rescan_seconds: float = 10.0,
        use_idle: bool = True,
    ) -> None:
        self._engine = engine
        self._accounts = accounts
        self._poll = poll_seconds
        self._idle = idle_seconds
        self._rescan = rescan_seconds
        self._use_idle = use_idle  # False: poll even where IDLE is offered (tests, odd servers)
        self._threads: dict[int, tuple[InboxAccount, threading.Thread, threading.Event]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """IMAP settings changed: read them now rather than at the next rescan."""
        self._wake.set()

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Watch until `stop` is set, then stop every thread (each within about a second)."""
        self._loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                self._wake.clear()  # before reading: a wake from now on means read again
                try:
                    self._follow(await self._accounts())
                except Exception:  # the database may be away; the watches keep running
                    log.warning("inbox watch: could not read the mailbox settings", exc_info=True)
                await self._pause(stop)
        finally:
            await self.close()

    async def _pause(self, stop: asyncio.Event) -> None:
        """Until the next rescan, `wake` or `stop`."""
        waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())}
        try:
            await asyncio.wait(waiters, timeout=self._rescan, return_when="FIRST_COMPLETED")
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _follow(self, accounts: Sequence[InboxAccount]) -> None:
        """Start a thread per new account; restart one whose settings changed; stop the rest."""
        wanted = {account.user_id: account for account in accounts}
        for user_id, (account, thread, halt) in list(self._threads.items()):
            if wanted.get(user_id) != account or not thread.is_alive():
                halt.set()
                del self._threads[user_id]
        for user_id, account in wanted.items():
            if user_id not in self._threads:
                halt = threading.Event()
                thread = threading.Thread(
                    target=self._watch,
                    args=(account, halt),
                    name=f"inbox-{user_id}",
                    daemon=True,
                )
                self._threads[user_id] = (account, thread, halt)
                thread.start()

    async def close(self) -> None:
        """Stop every watch and wait for its thread (it logs out first)."""
        threads = list(self._threads.values())
        self._threads.clear()
        for _account, _thread, halt in threads:
            halt.set()
        for _account, thread, _halt in threads:
            await asyncio.to_thread(thread.join, 30.0)

    # In the user's thread.

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run database work on the worker's event loop and wait for it."""
        assert self._loop is not None
        # Bounded: a loop that has gone away must not leave this thread waiting forever.
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(CALL_TIMEOUT)

    def _watch(self, account: InboxAccount, halt: threading.Event) -> None:
        failures = 0
        while not halt.is_set():
            try:
                with connect(account.target) as box:
                    failures = 0
                    self._call(self._note(account.user_id, ""))
                    inbox = box.inbox_folder()
                    idle = self._use_idle and box.has("IDLE")
                    while not halt.is_set():
                        last_uid = self._sync(box, inbox, account.user_id, halt)
                        if not self._more_since(box, last_uid):
                            self._wait(box, idle, halt)
                return
            except ImapError as exc:
                delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
                if not exc.retryable:
                    delay = SETTINGS_DELAY
                log.info("inbox of user %d: %s", account.user_id, exc)
                # The N_ message id, translated where it is shown (Settings > Mailbox).
                self._call_quietly(self._note(account.user_id, exc.words))
            except Exception:
                delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
                log.warning("inbox of user %d: the watch failed", account.user_id, exc_info=True)
            failures += 1
            halt.wait(delay)

    def _call_quietly(self, coroutine: Coroutine[Any, Any, None]) -> None:
        try:
            self._call(coroutine)
        except Exception:
            log.warning("inbox watch: could not record the error", exc_info=True)

    def _sync(self, box: ImapSession, inbox: str, user_id: int, halt: threading.Event) -> int:
        """Read and record everything new, one batch (and its new position) at a time.

        Returns the highest UID now recorded as read.
        """
        selected = box.client.select_folder(inbox, readonly=True)
        uidvalidity = int(selected[b"UIDVALIDITY"])
        position = self._call(self._position(user_id))
        last_uid = position.last_uid
        if position.uidvalidity != uidvalidity:
            last_uid = 0
            if position.since is None:  # no mail of ours yet: nothing before now matters
                uidnext = int(selected.get(b"UIDNEXT", 1))
                self._call(self._advance(user_id, uidvalidity, uidnext - 1, []))
                return uidnext - 1
            criteria: list[Any] = ["SINCE", position.since]
        else:
            criteria = ["UID", f"{last_uid + 1}:*"]
        uids = sorted(uid for uid in box.client.search(criteria) if uid > last_uid)
        for start in range(0, len(uids), BATCH):
            if halt.is_set():
                break
            batch = uids[start : start + BATCH]
            found = self._read(box, batch)
            recorded = self._call(self._advance(user_id, uidvalidity, batch[-1], found))
            last_uid = batch[-1]
            if recorded:
                log.info("inbox of user %d: recorded %d replies or bounces", user_id, recorded)
        if position.uidvalidity != uidvalidity and not halt.is_set():
            # Started over: everything below UIDNEXT that SINCE did not find is older
            # than our first message, so the position may move past all of it.
            floor = int(selected.get(b"UIDNEXT", 1)) - 1
            last_uid = max(last_uid, floor)
            self._call(self._advance(user_id, uidvalidity, last_uid, []))
        elif not uids:
            self._call(self._advance(user_id, uidvalidity, last_uid, []))  # "last looked"
        return last_uid

    def _more_since(self, box: ImapSession, last_uid: int) -> bool:
        """Whether mail arrived while the last batch was read, just before waiting.

        IMAPClient drops the untagged EXISTS a server sends along with a FETCH or
        SEARCH, and IDLE only reports what the server has not reported yet: mail
        that arrived during the sync would wait for the next IDLE round. NOOP
        lets the server catch up first; the SEARCH after it then sees that mail.
        """
        box.client.noop()
        return any(uid > last_uid for uid in box.client.search(["UID", f"{last_uid + 1}:*"]))

    def _read(self, box: ImapSession, uids: list[int]) -> list[tuple[int, InboxMessage]]:
        """Headers of every message; the start of the body only for possible bounces."""
        heads = box.client.fetch(uids, ["BODY.PEEK[HEADER]"])
        raws: dict[int, bytes] = {
            uid: bytes(data.get(b"BODY[HEADER]") or b"") for uid, data in heads.items()
        }
        full = [uid for uid, raw in raws.items() if needs_body(raw)]
        if full:
            for uid, data in box.client.fetch(full, [BODY_FETCH]).items():
                body = next(
                    (v for k, v in data.items() if isinstance(k, bytes) and k.startswith(b"BODY[")),
                    None,
                )
                if body:
                    raws[uid] = bytes(body)
        return [(uid, analyse(raws[uid])) for uid in sorted(raws)]

    def _wait(self, box: ImapSession, idle: bool, halt: threading.Event) -> None:
        """Until the inbox changes (IDLE) or the poll interval passes; a second after `halt`."""
        if not idle:
            halt.wait(self._poll)
            return
        box.client.idle()
        try:
            deadline = time.monotonic() + self._idle
            while not halt.is_set() and time.monotonic() < deadline:
                if box.client.idle_check(timeout=1):
                    return
        finally:
            box.client.idle_done()

    # On the event loop.

    async def _position(self, user_id: int) -> Position:
        async with sessions(self._engine)() as db:
            mailbox = await db.get(Mailbox, user_id)
            first = await db.scalar(
                select(func.min(Message.created_at)).where(Message.user_id == user_id)
            )
        since = (first - timedelta(days=1)).date() if first is not None else None
        if mailbox is None:
            return Position(None, 0, since)
        return Position(mailbox.inbox_uidvalidity, mailbox.inbox_last_uid, since)

    async def _advance(
        self,
        user_id: int,
        uidvalidity: int,
        last_uid: int,
        found: list[tuple[int, InboxMessage]],
    ) -> int:
        """Record a batch and move the position past it, in one transaction."""
        now = _now()
        count = 0
        async with sessions(self._engine)() as db, db.begin():
            for uid, message in found:
                key = message.message_id or f"uid:{uidvalidity}:{uid}"
                count += len(await replies.record(db, user_id, message, key, now))
            await db.execute(
                update(Mailbox)
                .where(Mailbox.user_id == user_id)
                .values(
                    inbox_uidvalidity=uidvalidity,
                    inbox_last_uid=last_uid,
                    inbox_synced_at=now,
                    inbox_error="",
                )
            )
        return count

    async def _note(self, user_id: int, error: str) -> None:
        """Keep the last error (or none) on the mailbox, for the settings page."""
        async with sessions(self._engine)() as db, db.begin():
            await db.execute(
                update(Mailbox).where(Mailbox.user_id == user_id).values(inbox_error=error[:500])
            )
