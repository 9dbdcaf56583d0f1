"""One clean copy in the sender's Sent folder (S12, B2), and no tracked ones.

After every copy of a message has its outcome, the send worker wakes the
`SentFolder` it owns. For each delivered message it signs in to the user's
IMAP mailbox (mail.imap) and:

1. saves the clean copy (core.sentcopy: as written, Bcc kept, no pixel, the
   original links, the same Message-ID, marked with SENT_COPY_HEADER) in Sent,
   flagged \\Seen, unless a copy with that mark and Message-ID is already there
   (a try that was cut short after APPEND): never two;
2. finds the tracked copies the provider saved itself (Gmail, Microsoft 365 put
   every submitted message in Sent): same Message-ID, no mark; they are
   flagged \\Deleted and expunged by UID (UIDPLUS), else by a plain EXPUNGE.

Providers may save their copies a little after accepting them, so step 2 runs
once more `LATE_SWEEP_SECONDS` later (without step 1: a clean copy the user has
deleted by then stays deleted).

Both steps are safe to repeat, so a failure that may pass (the server cannot
be reached, a connection lost) retries the whole try later (`RETRY_DELAYS`);
one that needs the user (a wrong password, a refused address, no Sent folder)
fails at once with words the message page and Settings show. IMAP is blocking
and building the copy costs time in proportion to the message, so each try
runs in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import default as default_policy

import imapclient
from cryptography.fernet import Fernet
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from mailbeacon.core.addresses import Mailbox, parse_mailbox
from mailbeacon.core.policy import N_
from mailbeacon.core.sentcopy import (
    SENT_COPY_HEADER,
    SENT_COPY_VALUE,
    build_sent_copy,
    sent_copy_bytes,
)
from mailbeacon.core.submitted import sent_copy
from mailbeacon.mail.imap import (
    ImapError,
    ImapSession,
    ImapTarget,
    connect,
    remember_outcome,
    target_for_user,
)
from mailbeacon.store import sentcopies
from mailbeacon.store.sentcopies import SentCopyJob

log = logging.getLogger(__name__)

# Seconds before the 2nd, 3rd, ... try: about three hours in all, then "failed".
RETRY_DELAYS: tuple[float, ...] = (5, 30, 120, 600, 1800, 3600, 5400)
LEASE_SECONDS = 300.0
LATE_SWEEP_SECONDS = 120.0
IDLE_POLL_SECONDS = 5.0
BUILD_FAILED = N_("The copy for your Sent folder could not be built.")


@dataclass(frozen=True, slots=True)
class Saved:
    """What one try did: the folder, whether it saved the copy now, tracked copies removed."""

    folder: str
    appended: bool
    removed: int


def clean_copy(job: SentCopyJob) -> bytes:
    """The message as the user wrote it, ready for APPEND.

    A message from a mail client (B12) is kept as it was submitted, attachments
    and all (core.submitted.sent_copy), with our mark on top.
    """
    if job.raw_source is not None:
        raw = sent_copy(job.raw_source, message_id=job.message_id_header, date=job.created_at)
        return f"{SENT_COPY_HEADER}: {SENT_COPY_VALUE}\r\n".encode("ascii") + raw

    def boxes(people: tuple[tuple[str, str], ...]) -> tuple[Mailbox, ...]:
        return tuple(Mailbox(address, name) for address, name in people)

    message = build_sent_copy(
        sender=parse_mailbox(job.from_address),
        to=boxes(job.to),
        cc=boxes(job.cc),
        bcc=boxes(job.bcc),
        subject=job.subject,
        html=job.html,
        text=job.text,
        message_id=job.message_id_header,
        date=job.created_at,
    )
    return sent_copy_bytes(message)


def _same_message_id(found: str | None, wanted: str) -> bool:
    return found is not None and found.strip() == wanted.strip()


def save_in_sent(target: ImapTarget, job: SentCopyJob, raw: bytes | None) -> Saved:
    """Steps 1 and 2 in one session, or step 2 alone when `raw` is None (blocking: run in
    a thread). Raises ImapError."""
    with connect(target) as box:
        folder = box.sent_folder()
        box.client.select_folder(folder)
        ours, tracked = copies_in_folder(box.client, job.message_id_header)
        appended = not ours and raw is not None
        if appended:
            box.client.append(folder, raw, flags=[imapclient.SEEN], msg_time=job.created_at)
        # Two marked copies can only come from two tries racing: keep the first.
        remove(box, sorted(tracked) + sorted(ours)[1:])
        return Saved(folder, appended, len(tracked))


def copies_in_folder(client: imapclient.IMAPClient, message_id: str) -> tuple[list[int], list[int]]:
    """UIDs in the selected folder with this Message-ID: (our clean copies, the others)."""
    ours: list[int] = []
    others: list[int] = []
    uids = client.search(["HEADER", "Message-ID", message_id])
    if not uids:
        return ours, others
    parser = BytesHeaderParser(policy=default_policy)
    for uid, data in client.fetch(uids, ["BODY.PEEK[HEADER]"]).items():
        found = parser.parsebytes(bytes(data.get(b"BODY[HEADER]", b"")))
        if not _same_message_id(found.get("Message-ID"), message_id):
            continue  # SEARCH HEADER matches substrings
        marked = str(found.get(SENT_COPY_HEADER, "")).strip() == SENT_COPY_VALUE
        (ours if marked else others).append(uid)
    return ours, others


def remove(box: ImapSession, uids: list[int]) -> None:
    """Delete these messages from the selected folder: by UID where UIDPLUS allows.

    Without UIDPLUS only a plain EXPUNGE exists, which also removes whatever else
    was already flagged \\Deleted in that folder (as the user's mail client would).
    """
    if not uids:
        return
    box.client.add_flags(uids, [imapclient.DELETED], silent=True)
    if box.has("UIDPLUS"):
        box.client.uid_expunge(uids)
    else:
        box.client.expunge()


def attempt(target: ImapTarget, job: SentCopyJob) -> Saved:
    """Build the clean copy and save it, or sweep late (blocking: run in a thread)."""
    if job.late_sweep:
        return save_in_sent(target, job, None)
    try:
        raw = clean_copy(job)
    except ValueError:
        log.exception("message %d: the Sent copy could not be built", job.message_id)
        raise ImapError("protocol", BUILD_FAILED) from None
    return save_in_sent(target, job, raw)


class SentFolder:
    """Works through delivered messages, saving each one's clean copy in Sent."""

    def __init__(
        self,
        engine: AsyncEngine,
        fernet: Fernet,
        *,
        allow_private: bool,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        lease: float = LEASE_SECONDS,
        late_sweep: float = LATE_SWEEP_SECONDS,
    ) -> None:
        self._engine = engine
        self._fernet = fernet
        self._late_sweep = late_sweep
        self._allow_private = allow_private
        self._delays = retry_delays
        self._lease = lease
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """A message was delivered: look now rather than at the next poll."""
        self._wake.set()

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                worked = await self.run_once()
            except (SQLAlchemyError, OSError):
                log.warning("sent folder: database unavailable", exc_info=True)
                worked = False
            except Exception:  # one bad message must not stop every later one
                log.exception("sent folder: a try failed; it is retried")
                worked = False
            if not worked:
                await self._idle(stop)

    async def _idle(self, stop: asyncio.Event) -> None:
        self._wake.clear()
        waiters = {asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())}
        try:
            await asyncio.wait(waiters, timeout=IDLE_POLL_SECONDS, return_when="FIRST_COMPLETED")
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def run_once(self) -> bool:
        """Claim one due message and try its Sent copy; False when none was due."""
        job = await sentcopies.claim_next(self._engine, datetime.now(UTC), self._lease)
        if job is None:
            return False
        target = await target_for_user(
            self._engine, self._fernet, job.user_id, allow_private=self._allow_private
        )
        if target is None:  # IMAP is not set up (any more)
            outcome = "done" if job.late_sweep else "skipped"
            await sentcopies.record(self._engine, job.message_id, outcome, counts_attempt=False)
            return True
        try:
            saved = await asyncio.to_thread(attempt, target, job)
        except ImapError as exc:
            if job.late_sweep:  # the clean copy is there; the sweep was a bonus
                log.warning("message %d: late sweep of Sent failed: %s", job.message_id, exc)
                await sentcopies.record(self._engine, job.message_id, "done", counts_attempt=False)
            else:
                await self._failed(job, exc)
            return True
        await remember_outcome(self._engine, job.user_id, "")
        late_sweep_at = None
        if not job.late_sweep:
            late_sweep_at = datetime.now(UTC) + timedelta(seconds=self._late_sweep)
        await sentcopies.record(
            self._engine,
            job.message_id,
            "done",
            removed=saved.removed,
            retry_at=late_sweep_at,
            counts_attempt=not job.late_sweep,
        )
        log.info(
            "message %d: clean copy %s in %s, %d tracked copies removed",
            job.message_id,
            "saved" if saved.appended else "already",
            saved.folder,
            saved.removed,
        )
        return True

    async def _failed(self, job: SentCopyJob, error: ImapError) -> None:
        if error.words != BUILD_FAILED:  # a connection's outcome, for Settings
            await remember_outcome(self._engine, job.user_id, error.words)
        tries = job.attempts + 1
        if error.retryable and tries <= len(self._delays):
            retry_at = datetime.now(UTC) + timedelta(seconds=self._delays[tries - 1])
            await sentcopies.record(
                self._engine, job.message_id, "pending", error=error.words, retry_at=retry_at
            )
            return
        await sentcopies.record(self._engine, job.message_id, "failed", error=error.words)
