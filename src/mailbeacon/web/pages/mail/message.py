"""The message page (B1, S11, B3): per-recipient delivery and tracking, timeline, links, body."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from mailbeacon.core.hits import Verdict
from mailbeacon.core.policy import N_, reason_text
from mailbeacon.store import queries, sendqueue
from mailbeacon.store.queries import Activity, TimelineEntry
from mailbeacon.store.tables import Recipient
from mailbeacon.web.pages.mail.replies import reply_view
from mailbeacon.web.pages.mail.shared import (
    Current,
    TrackIcon,
    database,
    track_icons,
    url_builders,
)
from mailbeacon.web.render import render

router = APIRouter(include_in_schema=False)

MAX_ID = 2**63 - 1
MAX_PROGRESS_IDS = 100

# How each verdict reads in the timeline: a label and, when not counted, why not (B3).
VERDICTS: dict[str, tuple[str, str]] = {
    Verdict.HUMAN: (N_("Person"), ""),
    Verdict.PREFETCH: (
        N_("Prefetch"),
        N_("Fetched ahead of time by a mail client or privacy service, not by a person."),
    ),
    Verdict.HEAD: (
        N_("Link checker"),
        N_("A HEAD request: made by link checkers and scanners, never by a person reading."),
    ),
}
OTHER_VERDICT = (N_("Other"), N_("Not counted as a person opening or clicking."))


@dataclass(frozen=True, slots=True)
class RecipientItem:
    """One recipient's row: their copy's icons and the links they clicked, with counts."""

    recipient: Recipient
    opens: TrackIcon
    clicks: TrackIcon
    clicked: list[tuple[str, int]]


@dataclass(frozen=True, slots=True)
class TimelineItem:
    """One timeline event with its verdict's label and, when not counted, why not (B3)."""

    entry: TimelineEntry
    label: str
    reason: str


def timeline_item(entry: TimelineEntry) -> TimelineItem:
    """A counted event needs no excuse; an uncounted one always gets one, if only generic."""
    label, reason = VERDICTS.get(entry.verdict, OTHER_VERDICT)
    if entry.counted:
        reason = ""
    elif not reason:
        reason = OTHER_VERDICT[1]
    return TimelineItem(entry, label, reason)


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
    message = view.message
    opens, clicks = track_icons(
        f"m{message.id}", message, message, _as_activity(view.timeline, message.id)
    )
    recipients = []
    for recipient in message.recipients:
        mine = [a for a in view.activity if a.recipient_id == recipient.id]
        r_opens, r_clicks = track_icons(f"r{recipient.id}", recipient, message, mine)
        recipients.append(
            RecipientItem(recipient, r_opens, r_clicks, view.clicked.get(recipient.id, []))
        )
    return await render(
        request,
        "mail/message.html",
        {
            "message": message,
            "opens": opens,
            "clicks": clicks,
            "recipients": recipients,
            "timeline": [timeline_item(entry) for entry in view.timeline],
            "event_total": view.event_total,
            "reasons": [text for code in message.untracked_reasons if (text := reason_text(code))],
            "just_sent": sent == "1",
            **url_builders(),
            **replies.context(),
        },
    )


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
