"""Which counted events ring the bell, and how a burst of clicks becomes one (B3, S9).

Notifications are news, not noise:
- the first counted open of each recipient notifies, and a re-open only after
  the user's quiet gap (`users.reopen_quiet_hours`, default 3) since that
  recipient's last counted open;
- every counted click notifies, but clicks of one recipient that follow an
  unread click notification within `GROUP_WINDOW` join it ("Carl clicked 3
  links"). A grown notification is written as a new row (and the old one
  removed), so the live bell, which follows the newest id, sees it;
- hits older than `NEWS_HORIZON` when judged (a rebuild, a very late replay)
  never notify: what is old is not news.
Every hit a notification stands for is kept in `notified_hits`, so no hit is
ever notified twice, whatever is rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailbeacon.core.hits import HitKind
from mailbeacon.core.signals import Judgement
from mailbeacon.store.tables import Event, Notification, NotifiedHit

if TYPE_CHECKING:
    from mailbeacon.processor.context import CopyState

GROUP_WINDOW = timedelta(minutes=10)
NEWS_HORIZON = timedelta(days=1)


@dataclass(slots=True)
class Bell:
    """One notification to write: new, or an existing one grown by new clicks."""

    user_id: int
    message_id: int
    recipient_id: int
    link_id: int | None
    kind: str  # open or click
    occurred_at: datetime
    event_count: int = 1
    links: set[int] = field(default_factory=set)
    hit_seqs: list[int] = field(default_factory=list)  # new hits, in this batch
    replaces: int | None = None  # the stored notification this one grows

    def row(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "hit_seq": self.hit_seqs[-1],
            "message_id": self.message_id,
            "recipient_id": self.recipient_id,
            "link_id": self.link_id,
            "kind": self.kind,
            "occurred_at": self.occurred_at,
            "event_count": self.event_count,
            "link_count": max(1, len(self.links)),
        }


class Bells:
    """The notifications one batch raises, given the click groups still open."""

    def __init__(self, open_groups: dict[int, Bell] | None = None) -> None:
        self.click_groups: dict[int, Bell] = dict(open_groups or {})
        self.rung: list[Bell] = []
        self.now = datetime.now(UTC)

    def ring(self, copy: CopyState, row: Any, link_id: int | None, judgement: Judgement) -> None:
        """Consider one counted event of `copy` (call before its open is recorded)."""
        at: datetime = row.received_at
        if self.now - at > NEWS_HORIZON:
            return
        if row.kind == HitKind.CLICK:
            self._click(copy, row.seq, at, link_id)
            return
        last = copy.last_counted_open
        if last is not None and at - last < copy.quiet:
            return
        # A re-open is an "open" too: the feed tells it from the copy's first one.
        bell = Bell(copy.user_id, copy.message_id, row.recipient_id, None, "open", at)
        bell.hit_seqs.append(row.seq)
        self.rung.append(bell)

    def _click(self, copy: CopyState, seq: int, at: datetime, link_id: int | None) -> None:
        group = self.click_groups.get(copy.recipient_id)
        if group is not None and timedelta(0) <= at - group.occurred_at <= GROUP_WINDOW:
            group.event_count += 1
            group.occurred_at = at
            if link_id is not None:
                group.links.add(link_id)
            group.hit_seqs.append(seq)
            if all(bell is not group for bell in self.rung):
                self.rung.append(group)
            return
        bell = Bell(copy.user_id, copy.message_id, copy.recipient_id, link_id, "click", at)
        if link_id is not None:
            bell.links.add(link_id)
        bell.hit_seqs.append(seq)
        self.click_groups[copy.recipient_id] = bell
        self.rung.append(bell)


async def recent_click_groups(db: AsyncSession, copies: dict[int, CopyState]) -> dict[int, Bell]:
    """recipient id -> its newest unread click notification recent enough to grow."""
    if not copies:
        return {}
    since = datetime.now(UTC) - NEWS_HORIZON
    notifications = (
        await db.scalars(
            select(Notification)
            .where(
                Notification.recipient_id.in_(copies),
                Notification.kind == "click",
                Notification.read_at.is_(None),
                Notification.occurred_at >= since,
            )
            .order_by(Notification.occurred_at)
        )
    ).all()
    newest = {notification.recipient_id: notification for notification in notifications}
    links = await _links_of({notification.id for notification in newest.values()}, db)
    groups: dict[int, Bell] = {}
    for recipient_id, notification in newest.items():
        bell = Bell(
            notification.user_id,
            notification.message_id,
            recipient_id,
            notification.link_id,
            "click",
            notification.occurred_at,
            event_count=notification.event_count,
            links=links.get(notification.id, set()),
            replaces=notification.id,
        )
        if notification.link_id is not None:
            bell.links.add(notification.link_id)
        groups[recipient_id] = bell
    return groups


async def _links_of(notification_ids: set[int], db: AsyncSession) -> dict[int, set[int]]:
    """notification id -> the links its clicks went to (as far as events still say)."""
    if not notification_ids:
        return {}
    rows = await db.execute(
        select(NotifiedHit.notification_id, Event.link_id)
        .join(Event, Event.hit_seq == NotifiedHit.hit_seq)
        .where(NotifiedHit.notification_id.in_(notification_ids), Event.link_id.is_not(None))
    )
    found: dict[int, set[int]] = {}
    for notification_id, link_id in rows:
        if link_id is not None:
            found.setdefault(notification_id, set()).add(link_id)
    return found


async def write(db: AsyncSession, bells: Bells) -> None:
    """Insert the batch's notifications and the hits each stands for."""
    for bell in bells.rung:
        new_id = (
            await db.execute(insert(Notification).returning(Notification.id), [bell.row()])
        ).scalar_one()
        if bell.replaces is not None:
            await db.execute(
                update(NotifiedHit)
                .where(NotifiedHit.notification_id == bell.replaces)
                .values(notification_id=new_id)
            )
            await db.execute(delete(Notification).where(Notification.id == bell.replaces))
        await db.execute(
            insert(NotifiedHit),
            [{"hit_seq": seq, "notification_id": new_id} for seq in bell.hit_seqs],
        )
