"""The message page (B1, S11, B3, B4): per-recipient delivery and tracking, timeline, links, body.

Each recipient reads as a status in words with the reader's client; the
timeline shows what counts and folds machine events and repeats behind
native <details>, each with its class and the reason in words (B3).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from mailbeacon.core.policy import reason_text
from mailbeacon.mail.prepare import file_size
from mailbeacon.store import queries, schedule, sendqueue
from mailbeacon.store.queries import Activity, TimelineEntry
from mailbeacon.web import runtime_of, signals_text
from mailbeacon.web.i18n import Localizer
from mailbeacon.web.pages.mail.replies import reply_view
from mailbeacon.web.pages.mail.shared import (
    Checked,
    Current,
    database,
    recipient_item,
    track_icons,
    url_builders,
)
from mailbeacon.web.render import localizer_for, render

router = APIRouter(include_in_schema=False)

MAX_ID = 2**63 - 1
MAX_PROGRESS_IDS = 100


@dataclass(frozen=True, slots=True)
class TimelineItem:
    """One event in words: its class, the reason behind it, the client that made it."""

    entry: TimelineEntry
    label: str  # the class in the user's language
    reason: str  # the reason sentence in the user's language ("" when none stored)
    client: str  # the client in words


@dataclass(frozen=True, slots=True)
class Timeline:
    """Counted events (and possibly forwarded ones) in view; the rest folded by kind (B3)."""

    shown: list[TimelineItem]
    machine: list[TimelineItem]
    repeats: list[TimelineItem]

    def __bool__(self) -> bool:
        return bool(self.shown or self.machine or self.repeats)


def timeline_item(entry: TimelineEntry, l10n: Localizer) -> TimelineItem:
    """An event in words; an uncounted one always says why, if only generically."""
    verdict, reason = signals_text.class_and_reason(entry.verdict, entry.reason)
    because = signals_text.reason_text(reason, l10n)
    if not because and not entry.counted:
        because = l10n.gettext(signals_text.OTHER_REASON)
    return TimelineItem(
        entry,
        signals_text.class_text(verdict, l10n),
        because,
        signals_text.client_words(entry.user_agent, l10n),
    )


def timeline(entries: Iterable[TimelineEntry], l10n: Localizer) -> Timeline:
    """Split the events: repeats and machine events are folded, the rest shown.

    A possibly forwarded open is not the recipient's own, yet it is someone
    reading: it stays in view, marked, rather than among the machines.
    """
    folded = Timeline([], [], [])
    for entry in entries:
        item = timeline_item(entry, l10n)
        if entry.duplicate:
            folded.repeats.append(item)
        elif entry.counted or entry.forwarded:
            folded.shown.append(item)
        else:
            folded.machine.append(item)
    return folded


def _as_activity(entries: Iterable[TimelineEntry], message_id: int) -> list[Activity]:
    """The counted timeline entries as tooltip lines for the whole message.

    The timeline is already newest first across every recipient, whereas the
    view's `activity` keeps only the newest few per recipient.
    """
    return [
        Activity(e.kind, e.occurred_at, message_id, e.recipient_id, e.address, e.name, e.url)
        for e in entries
        if e.counted
    ]


@router.get("/mail/{message_id:int}")
async def message_page(
    request: Request, current: Current, message_id: int, sent: str = ""
) -> HTMLResponse:
    """One message: per-recipient delivery and tracking, the timeline, links, the body."""
    if message_id > MAX_ID:
        raise HTTPException(404)
    async with database(request) as db:
        view = await queries.message_view(db, current.user.id, message_id)
        if view is None:
            raise HTTPException(404)
        replies = await reply_view(
            db,
            current.user.id,
            [view.message.id],
            [(view.message.id, r.id) for r in view.message.recipients],
        )
        scheduled = await schedule.scheduled_at(db, current.user.id, message_id, datetime.now(UTC))
        attachments = await schedule.attachments_of(db, current.user.id, message_id)
    message = view.message
    l10n = localizer_for(request, current)
    opens, clicks = track_icons(
        f"m{message.id}", message, message, _as_activity(view.timeline, message.id)
    )
    recipients = [
        recipient_item(
            recipient,
            message,
            [a for a in view.activity if a.recipient_id == recipient.id],
            view.clicked.get(recipient.id, []),
            l10n,
        )
        for recipient in message.recipients
    ]
    return await render(
        request,
        "mail/message.html",
        {
            "message": message,
            "opens": opens,
            "clicks": clicks,
            "recipients": recipients,
            "timeline": timeline(view.timeline, l10n),
            "links": [link for link in message.links if not link.honeypot],
            "event_total": view.event_total,
            "reasons": [text for code in message.untracked_reasons if (text := reason_text(code))],
            "just_sent": sent == "1",
            "failed_copies": sum(r.status == "failed" for r in message.recipients)
            if message.status in ("failed", "partial")
            else 0,
            "scheduled": scheduled,
            "attachments": [(name, file_size(size)) for name, size in attachments],
            "scheduled_text": l10n.when(scheduled) if scheduled else "",
            **url_builders(),
            **replies.context(),
        },
    )


@router.post("/mail/{message_id:int}/send-again")
async def send_again(request: Request, current: Checked, message_id: int) -> RedirectResponse:
    """Send the copies that failed once more (the message page's "Send again").

    Only failed copies go again, and only once however often the button is pressed (see
    :func:`mailbeacon.store.sendqueue.send_again`); someone else's message is a 404 (S7).
    """
    if message_id > MAX_ID:
        raise HTTPException(404)
    runtime = runtime_of(request)
    queued = await sendqueue.send_again(
        runtime.engine, current.user.id, message_id, datetime.now(UTC)
    )
    if queued:
        runtime.sender.notify_queued()
    return RedirectResponse(f"/mail/{message_id}?sent=1", status_code=303)


@router.get("/mail/progress")
async def progress(
    request: Request,
    current: Current,
    message_id: Annotated[list[str], Query(alias="id")] = [],  # noqa: B006 - FastAPI copies it
) -> JSONResponse:
    """Delivery progress of the user's own messages, polled by compose.js while any is in
    flight (the pages show queued -> sending k/n -> sent, partial or failed without a reload).
    Ids that are not numbers, or not the user's, are left out (S7)."""
    ids = [
        int(v)
        for v in message_id[:MAX_PROGRESS_IDS]
        if v.isascii() and v.isdigit() and len(v) <= 19 and 0 < int(v) <= MAX_ID
    ]
    found = await sendqueue.progress(request.app.state.runtime.engine, current.user.id, ids)
    return JSONResponse(
        {
            "messages": [
                {"id": p.id, "status": p.status, "done": p.done, "total": p.total} for p in found
            ]
        },
        headers={"Cache-Control": "no-store"},
    )
