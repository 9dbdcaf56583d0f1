"""The sending flow: policy, store, rewrite per recipient, MIME, SMTP.

One message is stored once; each recipient gets a copy carrying their own
pixel and link tokens (B1), so every open and click is attributed to the
person whose copy it was. A refusal for one recipient is recorded on that
recipient and does not stop the others.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import selectinload

from mailbeacon.core.addresses import InvalidAddress, Mailbox, parse_mailbox, parse_mailboxes
from mailbeacon.core.compose import Draft, InvalidRequest, make_draft
from mailbeacon.core.mime import build_copy, new_message_id
from mailbeacon.core.policy import Switches, TrackingDecision, decide
from mailbeacon.core.rewrite import rewrite_html, rewrite_text
from mailbeacon.core.tokens import KeyRing
from mailbeacon.mail.smtp import Delivery, SmtpTarget, deliver
from mailbeacon.store.db import sessions
from mailbeacon.store.tables import Link, Message, Recipient, User

SmtpTargetFor = Callable[[User], Awaitable[SmtpTarget]]


@dataclass(frozen=True, slots=True)
class SendInput:
    """What a person asks to send, straight from a form, the API or the CLI."""

    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    subject: str = ""
    html: str | None = None
    text: str | None = None
    track_opens: bool | None = None  # None: the user's last choice (S6)
    track_links: bool | None = None


def _field_boxes(name: str, values: list[str]) -> list[Mailbox]:
    try:
        return parse_mailboxes(values)
    except InvalidAddress as exc:
        raise InvalidRequest.from_address(name, exc) from exc


def draft_from(user: User, request: SendInput) -> Draft:
    """Validate a request for `user`, raising InvalidRequest naming the field."""
    sender = parse_mailbox(str(Mailbox(user.email, user.display_name)))
    html = request.html if request.html is not None and request.html.strip() else None
    text = request.text if request.text is not None and request.text.strip() else None
    return make_draft(
        sender,
        to=_field_boxes("to", request.to),
        cc=_field_boxes("cc", request.cc),
        bcc=_field_boxes("bcc", request.bcc),
        subject=request.subject,
        html=html,
        text=text,
    )


def tracking_for(
    user: User, draft: Draft, request: SendInput, links: list[str]
) -> TrackingDecision:
    """What will be tracked for this draft, and why not (shown before and after sending).

    `links` is `trackable_links(draft, ...)`: callers need the list too, and
    finding it means parsing the whole body.
    """
    want_opens = user.last_track_opens if request.track_opens is None else request.track_opens
    want_links = user.last_track_links if request.track_links is None else request.track_links
    return decide(
        Switches(user.open_tracking, user.link_tracking),
        want_opens=want_opens,
        want_links=want_links,
        html=draft.html,
        text=draft.text,
        has_links=bool(links),
    )


def trackable_links(draft: Draft, public_url: str) -> list[str]:
    """The draft's links, minus any that already point at our own collector."""
    return [url for url in draft.links() if not _is_ours(url, public_url)]


def _is_ours(url: str, public_url: str) -> bool:
    return url.startswith((f"{public_url}/c/", f"{public_url}/o/"))


class Sender:
    """Sends drafts for users and records everything about each copy."""

    def __init__(
        self, engine: AsyncEngine, keys: KeyRing, public_url: str, target_for: SmtpTargetFor
    ) -> None:
        self._sessions = sessions(engine)
        self._keys = keys
        self._public_url = public_url.rstrip("/")
        self._target_for = target_for

    async def send(self, user_id: int, request: SendInput) -> Message:
        """Validate, store, send; returns the stored message with its recipients and links."""
        async with self._sessions() as db, db.begin():
            user = await db.get_one(User, user_id)
            draft = draft_from(user, request)
            links = trackable_links(draft, self._public_url)
            decision = tracking_for(user, draft, request, links)
            if request.track_opens is not None:
                user.last_track_opens = request.track_opens
            if request.track_links is not None:
                user.last_track_links = request.track_links
            message = Message(
                user_id=user.id,
                message_id_header=new_message_id(draft.sender.address.rpartition("@")[2]),
                from_address=str(draft.sender),
                subject=draft.subject,
                html_body=draft.html,
                text_body=draft.text,
                requested_opens=user.last_track_opens,
                requested_links=user.last_track_links,
                track_opens=decision.track_opens,
                track_links=decision.track_links,
                untracked_reasons=[reason.value for reason in decision.reasons],
                recipients=[
                    Recipient(address=box.address, name=box.name, field=field_name)
                    for field_name, box in draft.recipients
                ],
                links=[Link(url=url) for url in (links if decision.track_links else [])],
            )
            db.add(message)
            await db.flush()
            target = await self._target_for(user)
            deliveries = [self._copy(message, draft, r) for r in message.recipients]
        results = await deliver(target, deliveries)
        return await self._record_results(message.id, [r.error for r in results])

    def _copy(self, message: Message, draft: Draft, recipient: Recipient) -> Delivery:
        link_ids = {link.url: link.id for link in message.links}

        def click_url_for(url: str) -> str | None:
            link_id = link_ids.get(url)
            if link_id is None:
                return None
            token = self._keys.sign_click(message.id, recipient.id, link_id, url)
            return f"{self._public_url}/c/{token}"

        html = draft.html
        text = draft.text
        if html is not None:
            pixel = None
            if message.track_opens:
                pixel = f"{self._public_url}/o/{self._keys.sign_open(message.id, recipient.id)}.gif"
            html = rewrite_html(
                html, pixel_url=pixel, click_url_for=click_url_for if message.track_links else None
            )
        if text is not None and message.track_links:
            text = rewrite_text(text, click_url_for)
        mime = build_copy(
            sender=draft.sender,
            to=draft.to,
            cc=draft.cc,
            subject=draft.subject,
            html=html,
            text=text,
            message_id=message.message_id_header,
            date=message.created_at,
        )
        return Delivery(draft.sender.address, recipient.address, mime)

    async def _record_results(self, message_id: int, errors: list[str]) -> Message:
        now = datetime.now(UTC)
        async with self._sessions() as db, db.begin():
            message: Message = await db.get_one(
                Message,
                message_id,
                options=[selectinload(Message.recipients), selectinload(Message.links)],
            )
            for recipient, error in zip(message.recipients, errors, strict=True):
                recipient.status = "failed" if error else "sent"
                recipient.error = error
                recipient.sent_at = None if error else now
            failures = sum(1 for error in errors if error)
            if failures == 0:
                message.status = "sent"
            elif failures == len(errors):
                message.status = "failed"
            else:
                message.status = "partial"
            message.sent_at = now
        return message


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
