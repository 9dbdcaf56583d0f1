"""Pages: the notification feed, mark-as-read, and the live bell stream (S9, B5).

The stream is plain Server-Sent Events polling the database about once a
second: the processor may run in another process, and a poll of one indexed
aggregate per open tab is cheaper than any pub/sub we would have to run.
Texts are built here, in the user's language, as plain strings; the feed
escapes them (Jinja) and the bell inserts them as text (app.js), so recipient
names and subjects, which anyone can choose, are never markup.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy.exc import SQLAlchemyError

from mailbeacon.core.hits import HitKind
from mailbeacon.store.db import sessions
from mailbeacon.store.notifications import (
    NotificationItem,
    UnreadState,
    mark_all_read,
    mark_read,
    notifications_after,
    notifications_page,
    unread_state,
)
from mailbeacon.web.auth import SignedIn, require_csrf, require_user, signed_in
from mailbeacon.web.i18n import Localizer
from mailbeacon.web.inputs import id_or_404, parse_cursor, parse_page
from mailbeacon.web.paging import pager
from mailbeacon.web.reminders_text import reminder_sentence
from mailbeacon.web.render import localizer_for, render

router = APIRouter(include_in_schema=False)
log = logging.getLogger(__name__)

PER_PAGE = 30
POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
# A stream ends by itself after this long and the browser reconnects `RETRY_MS`
# later, resuming from Last-Event-ID, so nothing is missed. The cap is what keeps
# a server shutdown from waiting on open tabs: uvicorn waits for every response
# to finish before it runs the app's shutdown, and tells a stream nothing.
STREAM_SECONDS = 30.0
RETRY_MS = 3000
MAX_NEW = 5
TOAST_CHARS = 80


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """A notification as the feed shows it."""

    item: NotificationItem
    text: str
    url: str


def _shorten(value: str, limit: int | None) -> str:
    if limit is None or len(value) <= limit:
        return value
    return value[: limit - 1].rstrip() + "…"


def describe(item: NotificationItem, l10n: Localizer, *, limit: int | None = None) -> str:
    """One line saying who did what to which email, in the user's language (plain text).

    A burst of clicks is one notification and reads as one ("Carl clicked 3
    links"); an open after the user's quiet gap reads as a re-open ("again").
    """
    who = _shorten(item.recipient_name or item.recipient_address, limit)
    subject = _shorten(item.subject or l10n.gettext("(no subject)"), limit)
    if item.kind == "reply":  # B11: from the inbox watch
        if not item.from_recipient:
            return l10n.gettext(
                "%(sender)s (not a recipient) replied to “%(subject)s”",
                sender=who,
                subject=subject,
            )
        return l10n.gettext(
            "%(recipient)s replied to “%(subject)s”", recipient=who, subject=subject
        )
    if item.kind == "reminder":  # B5: a follow-up reminder fired
        return reminder_sentence(item.reminder_condition, item.reminder_days, who, subject, l10n)
    if item.kind == "bounce":
        return l10n.gettext(
            "“%(subject)s” bounced for %(recipient)s (%(code)s)",
            recipient=who,
            subject=subject,
            code=item.status_code or "?",
        )
    if item.kind == HitKind.CLICK:
        if item.link_count > 1:
            return l10n.ngettext(
                "%(recipient)s clicked %(num)d link in “%(subject)s”",
                "%(recipient)s clicked %(num)d links in “%(subject)s”",
                item.link_count,
                recipient=who,
                subject=subject,
            )
        url = _shorten(item.link_url or l10n.gettext("a link"), limit)
        return l10n.gettext(
            "%(recipient)s clicked %(url)s in “%(subject)s”",
            recipient=who,
            url=url,
            subject=subject,
        )
    if item.reopen:
        return l10n.gettext(
            "%(recipient)s opened “%(subject)s” again", recipient=who, subject=subject
        )
    return l10n.gettext("%(recipient)s opened “%(subject)s”", recipient=who, subject=subject)


def mail_url(item: NotificationItem) -> str:
    return f"/mail/{item.message_id}"


def _feed_url(page: int) -> str:
    return "/notifications" if page <= 1 else f"/notifications?page={page}"


@router.get("/notifications")
async def feed(
    request: Request,
    current: Annotated[SignedIn, Depends(require_user)],
    page: str = "1",
) -> HTMLResponse:
    """The user's notifications, newest first, 30 to a page (an odd ?page= is page 1)."""
    number = parse_page(page)
    async with sessions(request.app.state.runtime.engine)() as db:
        items, total = await notifications_page(db, current.user.id, number, PER_PAGE)
    l10n = localizer_for(request, current)
    entries = [FeedEntry(item, describe(item, l10n), mail_url(item)) for item in items]
    return await render(
        request,
        "notifications/feed.html",
        {
            "entries": entries,
            "total": total,
            "page": number,
            "pager": pager("/notifications", number, PER_PAGE, total),
        },
    )


@router.post("/notifications/read-all")
async def read_all(
    request: Request, current: Annotated[SignedIn, Depends(require_csrf)]
) -> Response:
    async with sessions(request.app.state.runtime.engine)() as db, db.begin():
        await mark_all_read(db, current.user.id, datetime.now(UTC))
    return RedirectResponse("/notifications", status_code=303)


@router.post("/notifications/{notification_id}/read")
async def read_one(
    request: Request,
    notification_id: str,
    current: Annotated[SignedIn, Depends(require_csrf)],
    page: Annotated[str, Form()] = "1",
) -> Response:
    """Mark one notification read; another user's (or none) is a 404, never a 403 (S7)."""
    row_id = id_or_404(notification_id)
    async with sessions(request.app.state.runtime.engine)() as db, db.begin():
        found = await mark_read(db, current.user.id, row_id, datetime.now(UTC))
    if not found:
        raise HTTPException(404)
    return RedirectResponse(_feed_url(parse_page(page)), status_code=303)


@router.get("/notifications/stream")
async def stream(request: Request) -> Response:
    """The bell's live feed (SSE). Signed out: a bare 401 (EventSource cannot follow a redirect)."""
    current = await signed_in(request)
    if current is None:
        return Response(status_code=401)
    user_id = current.user.id
    async with sessions(request.app.state.runtime.engine)() as db:
        state = await unread_state(db, user_id)
        resumed = _last_event_id(request, state.latest_id)
        missed: list[NotificationItem] = []
        if resumed is not None and resumed < state.latest_id:
            missed = await notifications_after(db, user_id, resumed, MAX_NEW)
    events = _events(request, user_id, localizer_for(request, current), state, missed)
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _last_event_id(request: Request, latest_id: int) -> int | None:
    """The cursor a reconnecting browser sends back, if it is one we could have sent."""
    cursor = parse_cursor(request.headers.get("last-event-id", ""))
    return None if cursor is None else min(cursor, latest_id)


def _unread_event(
    state: UnreadState, cursor: int, new: list[NotificationItem], l10n: Localizer
) -> str:
    data = {
        "unread": state.unread,
        # The id lets a desktop notification (glance.js) mark itself read when clicked.
        "new": [
            {"id": i.id, "text": describe(i, l10n, limit=TOAST_CHARS), "url": mail_url(i)}
            for i in new
        ],
    }
    return f"id: {cursor}\nevent: unread\ndata: {json.dumps(data)}\n\n"


async def _events(
    request: Request,
    user_id: int,
    l10n: Localizer,
    state: UnreadState,
    missed: list[NotificationItem],
) -> AsyncIterator[str]:
    """Send the count now, then whenever it or the newest notification changes.

    Ends when the client goes away (Starlette also cancels us then), when the
    task is cancelled (a server shutting down with a graceful timeout), and
    after `STREAM_SECONDS` (see there). A database error skips one poll: the
    bell goes quiet during an outage instead of breaking the connection.
    """
    engine = request.app.state.runtime.engine
    clock = asyncio.get_running_loop().time
    started = last_sent = clock()
    cursor = state.latest_id
    failing = False
    yield f"retry: {RETRY_MS}\n" + _unread_event(state, cursor, missed, l10n)
    while clock() - started < STREAM_SECONDS:
        await asyncio.sleep(POLL_SECONDS)
        if await request.is_disconnected():
            return
        try:
            async with sessions(engine)() as db:
                now = await unread_state(db, user_id)
                new = []
                if now.latest_id > cursor:
                    new = await notifications_after(db, user_id, cursor, MAX_NEW)
        except (SQLAlchemyError, OSError):
            if not failing:
                log.warning("notification stream: database unavailable", exc_info=True)
            failing = True
            continue
        failing = False
        if now != state:
            state, cursor = now, max(cursor, now.latest_id)
            last_sent = clock()
            yield _unread_event(state, cursor, new, l10n)
        elif clock() - last_sent >= KEEPALIVE_SECONDS:
            last_sent = clock()
            yield ": keepalive\n\n"
