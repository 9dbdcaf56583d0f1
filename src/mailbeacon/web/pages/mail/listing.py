"""The mail list (S8, S13): sent mail, newest first, filterable, with tracking icons.

Each row also says in words what happened (`glance`), and the list sorts by
"Last activity" (newest counted open, click or reply first) as well as by
when it was sent; the sort survives paging, the "Tracked emails" filter and
search, as each of those survives the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from mailbeacon.store import queries
from mailbeacon.store.tables import Message, Recipient
from mailbeacon.web.i18n import Localizer
from mailbeacon.web.pages.mail.glance import Glance, message_glance
from mailbeacon.web.pages.mail.replies import ReplyView, reply_view
from mailbeacon.web.pages.mail.shared import (
    Current,
    TrackIcon,
    database,
    page_number,
    reading_of,
    reading_text,
    track_icons,
    url_builders,
)
from mailbeacon.web.paging import pager, url_with
from mailbeacon.web.render import localizer_for, render

router = APIRouter(include_in_schema=False)

SHOWN_RECIPIENTS = 2


@dataclass(frozen=True, slots=True)
class ListItem:
    """One row: the first few recipients, how many more there are, and the icons."""

    message: Message
    shown: list[Recipient]
    more: int
    opens: TrackIcon
    clicks: TrackIcon
    glance: Glance


def sort_or_default(value: str) -> str:
    """A known ?sort=, else the default (an odd value is never an error page)."""
    return value if value in queries.SORTS else queries.SORT_SENT


def list_item(row: queries.MailRow, l10n: Localizer, replies: ReplyView, now: datetime) -> ListItem:
    """A list row; only the first recipients are named, so a long list keeps rows short.

    The open icon's tooltip says how each reader opened it, in words (B3).
    """
    readings = [(r, reading_of(r)) for r in row.recipients]
    readers = [(r.name or r.address, reading_text(x, l10n)) for r, x in readings if x.opened]
    opens, clicks = track_icons(
        f"m{row.message.id}", row.message, row.message, row.activity, readers=readers
    )
    return ListItem(
        message=row.message,
        shown=row.recipients[:SHOWN_RECIPIENTS],
        more=max(0, len(row.recipients) - SHOWN_RECIPIENTS),
        opens=opens,
        clicks=clicks,
        glance=message_glance(
            row.message, row.activity, replies.icon(f"m{row.message.id}"), l10n, now
        ),
    )


@router.get("/mail")
async def mail_list(
    request: Request,
    current: Current,
    page: str = "1",
    tracked: str = "",
    q: str = "",
    sort: str = "",
) -> HTMLResponse:
    """The user's sent mail, newest first; `tracked`, `q` and `sort` combine and survive paging."""
    only_tracked = tracked == "1"
    q = q.strip()[: queries.MAX_SEARCH]
    order = sort_or_default(sort)
    number = page_number(page)
    async with database(request) as db:
        result = await queries.mail_page(
            db, current.user.id, page=number, tracked=only_tracked, q=q, sort=order
        )
        replies = await reply_view(db, current.user.id, [row.message.id for row in result.rows])
    l10n = localizer_for(request, current)
    kept_sort = None if order == queries.SORT_SENT else order
    filters: dict[str, str | int | None] = {
        "tracked": "1" if only_tracked else None,
        "q": q,
        "sort": kept_sort,
    }
    now = datetime.now(UTC)
    return await render(
        request,
        "mail/list.html",
        {
            "items": [list_item(row, l10n, replies, now) for row in result.rows],
            "total": result.total,
            "has_any": result.has_any,
            "only_tracked": only_tracked,
            "q": q,
            "filtered": only_tracked or bool(q),
            "toggle_tracked_url": url_with(
                "/mail", tracked=None if only_tracked else "1", q=q, sort=kept_sort
            ),
            "sort": order,
            "sort_urls": {
                key: url_with(
                    "/mail",
                    tracked=filters["tracked"],
                    q=q,
                    sort=None if key == queries.SORT_SENT else key,
                )
                for key in queries.SORTS
            },
            "pager": pager("/mail", number, result.per_page, result.total, **filters),
            **url_builders(),
            **replies.context(),
        },
    )
