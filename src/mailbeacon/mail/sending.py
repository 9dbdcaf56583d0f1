"""Sending, as the web app, the API and the CLI see it: check, queue, answer at once.

`Sender.enqueue` does the cheap checks (sizes and counts, before any parsing)
on the event loop, has the request parsed and its tracking decided in a worker
process (`mail.prepare`, through a `CpuPool`), and stores the message, its
recipients, links and send job in one short transaction. The message is then
"queued"; the send worker (`mail.worker`) delivers one copy per recipient,
each with its own pixel and link tokens (B1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import selectinload

from mailbeacon.core.mime import FileAttachment
from mailbeacon.cpupool import CpuPool
from mailbeacon.mail.prepare import (
    Prepared,
    Rejected,
    SenderProfile,
    SendInput,
    check_sizes,
    derives_text,
    prepare,
    preview,
)
from mailbeacon.store import sendqueue
from mailbeacon.store.db import sessions
from mailbeacon.store.tables import Message, User

__all__ = ["SendInput", "Sender", "load_message", "profile_of"]


def profile_of(user: User) -> SenderProfile:
    """What sending needs to know about a user, as plain data for the worker process."""
    return SenderProfile(
        email=user.email,
        display_name=user.display_name,
        open_tracking=user.open_tracking,
        link_tracking=user.link_tracking,
        last_track_opens=user.last_track_opens,
        last_track_links=user.last_track_links,
    )


class Sender:
    """Queues users' messages; `notify_queued` wakes an in-process send worker."""

    def __init__(
        self,
        engine: AsyncEngine,
        public_url: str,
        cpu: CpuPool,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self._public_url = public_url.rstrip("/")
        self._cpu = cpu
        self._on_queued = on_queued

    async def _profile(self, user_id: int) -> SenderProfile:
        async with sessions(self._engine)() as db:
            return profile_of(await db.get_one(User, user_id))

    async def enqueue(
        self,
        user_id: int,
        request: SendInput,
        *,
        attachments: tuple[FileAttachment, ...] = (),
        send_at: datetime | None = None,
    ) -> int:
        """Check and queue a message; its id. Raises InvalidRequest naming the field.

        Attachments (checked by the caller, `check_attachments`) never travel to the
        worker process that parses the request: they are stored as they are.
        """
        check_sizes(request)
        profile = await self._profile(user_id)
        result = await self._cpu.run(prepare, profile, request, self._public_url)
        if isinstance(result, Rejected):
            raise result.error()
        new = replace(
            _new_message(user_id, profile, request, result),
            attachments=attachments,
            send_at=send_at,
        )
        return await sendqueue.enqueue(self._engine, new, datetime.now(UTC))

    def notify_queued(self) -> None:
        """Wake an in-process send worker: call once the answer ("queued") is built, so the
        worker cannot change the status under it. A worker elsewhere polls the queue."""
        if self._on_queued is not None:
            self._on_queued()

    async def preview(self, user: User, request: SendInput) -> Prepared | None:
        """What would be tracked for this request as it stands (the composer's note)."""
        return await self._cpu.run(preview, profile_of(user), request, self._public_url)


def _new_message(
    user_id: int, profile: SenderProfile, request: SendInput, checked: Prepared
) -> sendqueue.NewMessage:
    opens = profile.last_track_opens if request.track_opens is None else request.track_opens
    links = profile.last_track_links if request.track_links is None else request.track_links
    text = checked.generated_text if derives_text(request) else request.text
    return sendqueue.NewMessage(
        user_id=user_id,
        message_id_header=checked.message_id_header,
        from_address=checked.sender,
        subject=checked.subject,
        html=None if checked.html_blank else (checked.linked_html or request.html),
        text=None if checked.text_blank else text,
        requested_opens=opens,
        requested_links=links,
        track_opens=checked.decision.track_opens,
        track_links=checked.decision.track_links,
        untracked_reasons=list(checked.untracked_reasons),
        recipients=checked.recipients,
        links=checked.links,
        honeypot_url=checked.honeypot_url,
    )


async def load_message(engine: AsyncEngine, user_id: int, message_id: int) -> Message | None:
    """A user's own message with recipients and links; None for anyone else's (S7)."""
    async with sessions(engine)() as db:
        result = await db.execute(
            select(Message)
            .where(Message.id == message_id, Message.user_id == user_id)
            .options(selectinload(Message.recipients), selectinload(Message.links))
        )
        message: Message | None = result.scalar_one_or_none()
        return message
