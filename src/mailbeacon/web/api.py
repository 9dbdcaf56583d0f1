"""The JSON API (B9): send mail and read its tracking, with per-user bearer tokens.

Every query is scoped to the token's user: another user's message is a 404,
never a 403, so ids reveal nothing (S7, DESIGN rule 4).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from mailbeacon.core.compose import (
    MAX_BODY_CHARS,
    MAX_LINKS,
    MAX_RECIPIENTS,
    MAX_SUBJECT,
    InvalidRequest,
)
from mailbeacon.core.policy import reason_text
from mailbeacon.core.readership import ReadingStatus
from mailbeacon.core.reminders import MAX_DAYS, MIN_DAYS, Condition, Rule
from mailbeacon.mail.sending import SendInput, load_message
from mailbeacon.runtime import Runtime
from mailbeacon.store import reminders
from mailbeacon.store.accounts import user_for_api_token
from mailbeacon.store.db import sessions
from mailbeacon.store.replies import delivery_status, replies_for_messages
from mailbeacon.store.tables import Event, Link, Message, Recipient, User
from mailbeacon.web import runtime_of, signals_text
from mailbeacon.web.i18n import Localizer
from mailbeacon.web.inputs import ApiId, StrictJsonRoute
from mailbeacon.web.pages.mail.shared import reading_of


class ApiError(BaseModel):
    """What went wrong, in one sentence."""

    detail: str


# The errors any operation may answer, so the OpenAPI document names every status we send.
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ApiError, "description": "The request could not be read (e.g. NUL in it)."},
    401: {"model": ApiError, "description": "No valid API token."},
    413: {
        "description": "The body is over the limit (64 KB without a valid token, else 12 MB).",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ApiError, "description": "No such message of yours."}
}

# Bodies are read with `strict_json`: NaN, 1e999, lone surrogates and NUL are a 422 (rule 6).
router = APIRouter(
    prefix="/api/v1", tags=["messages"], route_class=StrictJsonRoute, responses=ERRORS
)
bearer = HTTPBearer(auto_error=False, description="An API token from `mailbeacon token create`.")


async def api_user_id(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> int:
    """The user id behind the bearer token, or 401."""
    unauthorized = HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "a valid API token is needed: Authorization: Bearer <token>",
        headers={"WWW-Authenticate": "Bearer"},
    )
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized
    async with sessions(runtime_of(request).engine)() as db, db.begin():
        user = await user_for_api_token(db, credentials.credentials)
        if user is None:
            raise unauthorized
        return user.id


UserId = Annotated[int, Depends(api_user_id)]


def _addresses(value: list[str] | str | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else value


class ReminderIn(BaseModel):
    """A follow-up reminder (B5): a notification (and, with `email_me`, an email to you)
    for each recipient who has not opened / clicked / replied after `days` days, at
    the same time of day in your time zone. It stops once they do."""

    condition: Literal["not_opened", "not_clicked", "not_replied"]
    days: int = Field(ge=MIN_DAYS, le=MAX_DAYS)
    email_me: bool = False


class MessageIn(BaseModel):
    """An email to send. Omitted toggles take your last choice (S6)."""

    to: list[str] = Field(default_factory=list, max_length=MAX_RECIPIENTS)
    cc: list[str] = Field(default_factory=list, max_length=MAX_RECIPIENTS)
    bcc: list[str] = Field(default_factory=list, max_length=MAX_RECIPIENTS)
    subject: str = Field(default="", max_length=MAX_SUBJECT)
    html: str | None = Field(default=None, max_length=MAX_BODY_CHARS)
    text: str | None = Field(default=None, max_length=MAX_BODY_CHARS)
    track_opens: bool | None = None
    track_links: bool | None = None
    reminder: ReminderIn | None = Field(
        default=None, description="Remind me if not opened / clicked / replied (B5)."
    )

    @field_validator("to", "cc", "bcc", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class Activity(BaseModel):
    count: int
    first_at: datetime | None
    last_at: datetime | None


class Reason(BaseModel):
    code: str
    text: str


class ReaderCountsOut(BaseModel):
    """Counted opens by kind, and what was kept but not counted (B3, B4)."""

    person_opens: int = Field(description="Opens by a person's mail client or browser.")
    proxy_opens: int = Field(description="Opens through an image proxy (e.g. Gmail's).")
    inferred_opens: int = Field(description="Opens inferred from a click: images were blocked.")
    machine_events: int = Field(description="Prefetches, scanners and your own opens: not counted.")
    forwarded_opens: int = Field(description="Opens that look like someone else's: not counted.")


class Replies(BaseModel):
    """Replies found in the sender's inbox (B11; IMAP set up in Settings)."""

    count: int = Field(description="Replies by people (auto-replies are not counted)")
    first_at: datetime | None = None
    last_at: datetime | None = None


class Bounce(BaseModel):
    """A delivery status notification that reported this copy as failed (RFC 3464)."""

    at: datetime
    status_code: str = Field(description='RFC 3463 status such as "5.1.1"; "" if none given')
    detail: str = Field(description="The remote server's words")


class ReplyOut(BaseModel):
    """A reply, automatic reply or bounce referring to this message. Never its body."""

    id: int
    kind: str = Field(description='"reply", "auto_reply" or "bounce"')
    recipient_id: int | None = Field(description="None: the sender was not a recipient")
    from_address: str
    from_name: str
    received_at: datetime
    status_code: str
    detail: str = Field(description="A bounce's diagnostic, or why it is an auto-reply")


class RecipientOut(BaseModel):
    id: int
    address: str
    name: str
    field: str
    status: str = Field(
        description='queued, sending, sent, failed or unknown; "bounced" once a bounce came back'
    )
    error: str
    sent_at: datetime | None
    opens: Activity
    clicks: Activity
    reading: ReadingStatus = Field(
        description="What this copy shows: not_delivered (queued, failed or unknown), "
        "opened_by_person, opened_via_proxy, opened_inferred (clicked, images blocked), "
        "machine_only (only prefetches, scanners or you) or not_opened."
    )
    reading_text: str = Field(description="`reading` in words, in your language.")
    possibly_forwarded: bool = Field(
        description="Opened from a clearly different client or network after the first open."
    )
    counts: ReaderCountsOut
    client: str = Field(description="The first counted reader's client in words, or empty.")
    replies: Replies
    auto_replied_at: datetime | None = None
    bounce: Bounce | None = None


class LinkOut(BaseModel):
    id: int
    url: str
    clicks: Activity


class EventOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: int
    kind: str
    verdict: str = Field(description="The same as `class` (kept for older clients).")
    signal_class: str = Field(
        alias="class",
        description="Who made the hit: human, proxy, prefetch, scanner or self (you).",
    )
    reason: str = Field(description="Why it got its class (a code; see `reason_text`).")
    reason_text: str = Field(description="The reason in words, in your language.")
    counted: bool = Field(description="Counts as an open or click (only human and proxy).")
    duplicate: bool = Field(description="A repeat of the same client shortly after: not counted.")
    forwarded: bool = Field(description="Possibly forwarded: not counted as the recipient's own.")
    inferred_open: bool = Field(description="A click that also counts as the open.")
    client: str = Field(description="The client in words, in your language.")
    occurred_at: datetime
    recipient_id: int
    recipient: str
    link_id: int | None
    url: str | None
    user_agent: str
    ip: str


class MessageOut(BaseModel):
    id: int
    subject: str
    sender: str
    status: str
    created_at: datetime
    sent_at: datetime | None
    track_opens: bool
    track_links: bool
    untracked: list[Reason]
    opens: Activity
    clicks: Activity
    replies: Replies
    bounces: int
    recipients: list[RecipientOut]


class MessageDetail(MessageOut):
    links: list[LinkOut]
    events: list[EventOut]
    reply_log: list[ReplyOut] = Field(description="Replies, auto-replies and bounces, oldest first")


class MessagePage(BaseModel):
    items: list[MessageOut]
    page: int
    per_page: int
    total: int


def _opens(row: Message | Recipient) -> Activity:
    return Activity(count=row.open_count, first_at=row.first_open_at, last_at=row.last_open_at)


def _clicks(row: Message | Recipient | Link) -> Activity:
    return Activity(count=row.click_count, first_at=row.first_click_at, last_at=row.last_click_at)


def _reasons(codes: list[str]) -> list[Reason]:
    return [Reason(code=c, text=text) for c in codes if (text := reason_text(c)) is not None]


def recipient_out(r: Recipient, l10n: Localizer) -> RecipientOut:
    """One copy with its reading status and client in words (B3, B4)."""
    reading = reading_of(r)
    return RecipientOut(
        id=r.id,
        address=r.address,
        name=r.name,
        field=r.field,
        status=delivery_status(r),
        error=r.error,
        sent_at=r.sent_at,
        opens=_opens(r),
        clicks=_clicks(r),
        replies=Replies(count=r.reply_count, first_at=r.replied_at),
        auto_replied_at=r.auto_replied_at,
        bounce=(
            Bounce(at=r.bounced_at, status_code=r.bounce_status, detail=r.bounce_detail)
            if r.bounced_at is not None
            else None
        ),
        reading=reading.status,
        reading_text=signals_text.reading_text(reading.status, l10n),
        possibly_forwarded=reading.possibly_forwarded,
        counts=ReaderCountsOut(
            person_opens=r.person_open_count,
            proxy_opens=r.proxy_open_count,
            inferred_opens=r.inferred_open_count,
            machine_events=r.machine_event_count,
            forwarded_opens=r.forwarded_count,
        ),
        client=signals_text.client_words(r.reader_agent, l10n),
    )


def event_out(
    e: Event, addresses: dict[int, str], urls: dict[int, str], l10n: Localizer
) -> EventOut:
    """One event with its class, reason in words and client in words (B3)."""
    signal_class, reason = signals_text.class_and_reason(e.verdict, e.reason)
    return EventOut(
        id=e.id,
        kind=e.kind,
        verdict=signal_class,
        **{"class": signal_class},
        reason=reason,
        reason_text=signals_text.reason_text(reason, l10n),
        counted=e.counted,
        duplicate=e.duplicate,
        forwarded=e.forwarded,
        inferred_open=e.inferred_open,
        client=signals_text.client_words(e.user_agent, l10n),
        occurred_at=e.occurred_at,
        recipient_id=e.recipient_id,
        recipient=addresses.get(e.recipient_id, ""),
        link_id=e.link_id,
        url=urls.get(e.link_id) if e.link_id else None,
        user_agent=e.user_agent,
        ip=e.ip,
    )


def message_out(message: Message, l10n: Localizer) -> dict[str, Any]:
    """The list view of a message, as plain data."""
    return {
        "id": message.id,
        "subject": message.subject,
        "sender": message.from_address,
        "status": message.status,
        "created_at": message.created_at,
        "sent_at": message.sent_at,
        "track_opens": message.track_opens,
        "track_links": message.track_links,
        "untracked": _reasons(message.untracked_reasons),
        "opens": _opens(message),
        "clicks": _clicks(message),
        "replies": Replies(count=message.reply_count, last_at=message.last_reply_at),
        "bounces": message.bounce_count,
        "recipients": [recipient_out(r, l10n) for r in message.recipients],
    }


SEND_DESCRIPTION = f"""Queue an email: one copy per recipient, each with its own pixel and
link tokens. The answer comes at once with `status` "queued"; the worker then
delivers the copies one at a time, and `GET /api/v1/messages/{{id}}` shows the
progress: "sending" (see each recipient's `status`), then "sent", "partial" or
"failed". A copy refused for good (5xx) is "failed" with the server's answer;
a temporary refusal (4xx) or an unreachable server is retried for about eight
hours; a copy whose hand-over was interrupted is "unknown" and never sent twice.

Given `html` without `text`, the plain-text alternative is made from the HTML, so
every HTML email is sent as multipart/alternative. Bare URLs in the text of `html`
become links (`<a href>` around them), so they are tracked like any other link.

Limits (422 naming the field and the limit): at most {MAX_RECIPIENTS}
recipients (To, Cc and Bcc together), a subject of at most {MAX_SUBJECT}
characters, at most {MAX_BODY_CHARS:,} characters in each of `html` and
`text`, and at most {MAX_LINKS:,} different tracked links."""


@router.post(
    "/messages",
    status_code=status.HTTP_201_CREATED,
    response_model=MessageDetail,
    summary="Send an email, tracked per recipient",
    description=SEND_DESCRIPTION,
)
async def send_message(body: MessageIn, request: Request, user_id: UserId) -> dict[str, Any]:
    runtime = runtime_of(request)
    try:
        message_id = await runtime.sender.enqueue(
            user_id,
            SendInput(
                to=body.to,
                cc=body.cc,
                bcc=body.bcc,
                subject=body.subject,
                html=body.html,
                text=body.text,
                track_opens=body.track_opens,
                track_links=body.track_links,
            ),
        )
    except InvalidRequest as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [request_error(exc)]) from exc
    if body.reminder is not None:
        rule = Rule(Condition(body.reminder.condition), body.reminder.days, body.reminder.email_me)
        async with sessions(runtime.engine)() as db, db.begin():
            await reminders.create(db, user_id, message_id, rule)
    answer = await _detail(runtime, user_id, message_id)
    # The status as stored: a worker polling the queue may have claimed it since.
    answer["status"] = "queued"
    runtime.sender.notify_queued()
    return answer


def request_error(exc: InvalidRequest) -> dict[str, Any]:
    """A refused request as an entry of FastAPI's 422 list, with the limit when one applies."""
    error: dict[str, Any] = {
        "loc": ["body", exc.field],
        "msg": exc.problem,
        "type": "value_error",
        "code": exc.code,
    }
    if exc.code.startswith("too_") and "num" in exc.params:
        error["limit"] = exc.params["num"]
    return error


@router.get("/messages", response_model=MessagePage, summary="Your sent mail, newest first")
async def list_messages(
    request: Request,
    user_id: UserId,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 50,
    tracked: Annotated[bool | None, Query(description="Only tracked (or untracked) mail")] = None,
) -> dict[str, Any]:
    where = [Message.user_id == user_id]
    if tracked is not None:
        is_tracked = or_(Message.track_opens, Message.track_links)
        where.append(is_tracked if tracked else ~is_tracked)
    async with sessions(runtime_of(request).engine)() as db:
        total = await db.scalar(select(func.count(Message.id)).where(*where))
        messages = await db.scalars(
            select(Message)
            .where(*where)
            .order_by(Message.created_at.desc(), Message.id.desc())
            .offset((page - 1) * per_page)
            .limit(per_page)
            .options(selectinload(Message.recipients))
        )
        l10n = await _localizer(db, user_id)
        items = [message_out(m, l10n) for m in messages]
    return {"items": items, "page": page, "per_page": per_page, "total": total or 0}


@router.get(
    "/messages/{message_id}",
    response_model=MessageDetail,
    summary="One message with recipients, links and its event timeline",
    responses=NOT_FOUND,
)
async def get_message(message_id: ApiId, request: Request, user_id: UserId) -> dict[str, Any]:
    return await _detail(runtime_of(request), user_id, message_id)


async def _detail(runtime: Runtime, user_id: int, message_id: int) -> dict[str, Any]:
    message = await load_message(runtime.engine, user_id, message_id)
    if message is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such message")
    addresses = {r.id: r.address for r in message.recipients}
    # Honeypot links are never listed: only software follows them (B3).
    links = [link for link in message.links if not link.honeypot]
    urls = {link.id: link.url for link in links}
    async with sessions(runtime.engine)() as db:
        l10n = await _localizer(db, user_id)
        events = await db.scalars(
            select(Event)
            .where(Event.message_id == message.id)
            .order_by(Event.occurred_at, Event.id)
        )
        timeline = [event_out(e, addresses, urls, l10n) for e in events]
        replies = await replies_for_messages(db, user_id, [message.id])
    return {
        **message_out(message, l10n),
        "links": [LinkOut(id=link.id, url=link.url, clicks=_clicks(link)) for link in links],
        "events": timeline,
        "reply_log": [
            ReplyOut(
                id=line.id,
                kind=line.kind,
                recipient_id=line.recipient_id,
                from_address=line.from_address,
                from_name=line.from_name,
                received_at=line.received_at,
                status_code=line.status_code,
                detail=line.detail,
            )
            for line in replies.get(message.id, [])
        ],
    }


async def _localizer(db: AsyncSession, user_id: int) -> Localizer:
    """Texts in the API user's own language and time zone (their settings)."""
    user = await db.get(User, user_id)
    return Localizer(user.locale, user.timezone) if user else Localizer("en")
