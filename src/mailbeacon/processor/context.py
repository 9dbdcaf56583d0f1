"""What the classifier needs to know about the copies a batch of hits touches.

One round loads, for every recipient copy in its batch and in a fixed number
of queries: the copy's facts (delivery time, pixel, links and honeypot, the
sender's own address and signed-in devices, the outbox), its judged events
within the rules' look-back, the clients that ever followed its honeypot, the
raw hits just after the batch (up to the settle time, for bursts), and the
first person who read it. The cost grows with the batch and the copies'
recent activity, never with a message's whole history.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailbeacon.core.hits import HitKind
from mailbeacon.core.signals import (
    Client,
    CopyFacts,
    CopyHistory,
    Judged,
    Reason,
    Rules,
    Sighting,
    SignalClass,
)
from mailbeacon.store.tables import (
    Event,
    HitRow,
    Link,
    Message,
    Recipient,
    User,
    UserDevice,
)

# A device the sender has not signed in from for this long is no longer "theirs".
DEVICE_MEMORY = timedelta(days=90)


@dataclass(slots=True)
class CopyState:
    """One copy while its batch is judged: fixed facts and a growing history."""

    recipient_id: int
    message_id: int
    user_id: int
    notify: bool
    quiet: timedelta
    facts: CopyFacts
    history: CopyHistory
    last_counted_open: datetime | None


def sighting_of(row: Any) -> Sighting:
    """A hits row (or an events row with the same columns) as the rules see it."""
    return Sighting(
        hit_id=str(row.hit_id),
        kind=HitKind(row.kind),
        at=row.received_at,
        link_id=row.link_id,
        user_agent=row.user_agent,
        ip=row.ip,
        network=row.network or "",
        method=row.method,
        prefetch=bool(row.prefetch),
    )


async def load_copies(db: AsyncSession, rows: Sequence[Any], rules: Rules) -> dict[int, CopyState]:
    """Recipient id -> CopyState for every copy a hit of `rows` names.

    Hits naming a recipient that does not exist (or not of the message the
    token said) get no state: the caller keeps them as facts without events.
    """
    recipient_ids = {row.recipient_id for row in rows}
    first = min(row.received_at for row in rows)
    last = max(row.received_at for row in rows)
    recipients = (
        await db.execute(
            select(Recipient, Message, User)
            .join(Message, Message.id == Recipient.message_id)
            .join(User, User.id == Message.user_id)
            .where(Recipient.id.in_(recipient_ids))
        )
    ).all()
    message_ids = {message.id for _, message, _ in recipients}
    links = await _links(db, message_ids)
    devices = await _devices(db, {user.id for _, _, user in recipients}, first)
    earlier = await _earlier_events(db, recipient_ids, first - rules.lookback, last)
    honeypot_ids = {link for _, honeypots in links.values() for link in honeypots}
    marked = await _honeypot_clients(db, recipient_ids, honeypot_ids)
    later = await _later_hits(db, recipient_ids, first - rules.lookback, last + rules.lookahead)
    copies: dict[int, CopyState] = {}
    for recipient, message, user in recipients:
        real, honeypots = links.get(message.id, (frozenset(), frozenset()))
        facts = CopyFacts(
            delivered_at=recipient.sent_at,
            pixel=bool(message.track_opens and message.html_body),
            link_ids=real,
            honeypot_ids=honeypots,
            own_copy=_is_senders(recipient.address, user.email, message.from_address),
            outbox=recipient.outbox,
            sender_devices=devices.get(user.id, frozenset()),
            marked_clients=marked.get(recipient.id, frozenset()),
        )
        reader = (
            (recipient.reader_agent, recipient.reader_network) if recipient.reader_agent else None
        )
        copies[recipient.id] = CopyState(
            recipient_id=recipient.id,
            message_id=message.id,
            user_id=user.id,
            notify=user.notify_tracking,
            quiet=timedelta(hours=user.reopen_quiet_hours),
            facts=facts,
            history=CopyHistory(
                earlier=earlier.get(recipient.id, []),
                later=later.get(recipient.id, []),
                reader=reader,
                counted_opens=recipient.open_count,
            ),
            last_counted_open=recipient.last_open_at,
        )
    return copies


def _is_senders(address: str, user_email: str, from_header: str) -> bool:
    """The copy went to the sender's own address (their account's or From's)."""
    own = {user_email.casefold(), parseaddr(from_header)[1].casefold()}
    return address.casefold() in own


async def _links(
    db: AsyncSession, message_ids: Iterable[int]
) -> dict[int, tuple[frozenset[int], frozenset[int]]]:
    """message id -> (tracked link ids, honeypot link ids)."""
    real: defaultdict[int, set[int]] = defaultdict(set)
    honeypots: defaultdict[int, set[int]] = defaultdict(set)
    result = await db.execute(
        select(Link.id, Link.message_id, Link.honeypot).where(Link.message_id.in_(message_ids))
    )
    for link_id, message_id, honeypot in result:
        (honeypots if honeypot else real)[message_id].add(link_id)
    return {
        message_id: (frozenset(real[message_id]), frozenset(honeypots[message_id]))
        for message_id in set(real) | set(honeypots)
    }


async def _devices(
    db: AsyncSession, user_ids: Iterable[int], now: datetime
) -> dict[int, frozenset[Client]]:
    """user id -> the (agent, network) pairs of browsers they signed in with lately."""
    found: defaultdict[int, set[Client]] = defaultdict(set)
    result = await db.execute(
        select(UserDevice.user_id, UserDevice.user_agent, UserDevice.network).where(
            UserDevice.user_id.in_(user_ids), UserDevice.last_seen_at >= now - DEVICE_MEMORY
        )
    )
    for user_id, agent, network in result:
        found[user_id].add((agent, network))
    return {user_id: frozenset(clients) for user_id, clients in found.items()}


async def _earlier_events(
    db: AsyncSession, recipient_ids: Iterable[int], since: datetime, until: datetime
) -> dict[int, list[Judged]]:
    """recipient id -> its events in [since, until], judged, in time order."""
    rows = await db.execute(
        select(Event, HitRow.hit_id, HitRow.method, HitRow.prefetch)
        .join(HitRow, HitRow.seq == Event.hit_seq)
        .where(
            Event.recipient_id.in_(recipient_ids),
            Event.occurred_at >= since,
            Event.occurred_at <= until,
        )
        .order_by(Event.occurred_at, Event.hit_seq)
    )
    found: defaultdict[int, list[Judged]] = defaultdict(list)
    for event, hit_id, method, prefetch in rows:
        sighting = Sighting(
            hit_id=hit_id,
            kind=HitKind(event.kind),
            at=event.occurred_at,
            link_id=event.link_id,
            user_agent=event.user_agent,
            ip=event.ip,
            network=event.network,
            method=method,
            prefetch=prefetch,
        )
        found[event.recipient_id].append(
            Judged(
                sighting,
                SignalClass(event.verdict),
                _reason(event.reason),
                event.counted,
                event.duplicate,
                event.forwarded,
                event.inferred_open,
            )
        )
    return found


def _reason(value: str) -> Reason:
    """Events judged before reasons existed have none: they read as unknown agents."""
    try:
        return Reason(value)
    except ValueError:
        return Reason.UNKNOWN_AGENT


async def _honeypot_clients(
    db: AsyncSession, recipient_ids: Iterable[int], honeypot_ids: set[int]
) -> dict[int, frozenset[Client]]:
    """recipient id -> every client that ever followed that copy's honeypot.

    Found through the honeypot links' own events (the link_id index), so the
    cost is the honeypot's clicks, never the copy's whole history.
    """
    if not honeypot_ids:
        return {}
    rows = await db.execute(
        select(Event.recipient_id, Event.user_agent, Event.ip).where(
            Event.link_id.in_(honeypot_ids),
            Event.recipient_id.in_(recipient_ids),
            Event.reason == Reason.HONEYPOT.value,
        )
    )
    found: defaultdict[int, set[Client]] = defaultdict(set)
    for recipient_id, agent, ip in rows:
        found[recipient_id].add((agent, ip))
    return {recipient_id: frozenset(clients) for recipient_id, clients in found.items()}


async def _later_hits(
    db: AsyncSession, recipient_ids: Iterable[int], since: datetime, until: datetime
) -> dict[int, list[Sighting]]:
    """recipient id -> its raw hits in [since, until], judged or not, in time order."""
    rows = await db.execute(
        select(HitRow)
        .where(
            HitRow.recipient_id.in_(recipient_ids),
            HitRow.received_at >= since,
            HitRow.received_at <= until,
        )
        .order_by(HitRow.received_at, HitRow.seq)
    )
    found: defaultdict[int, list[Sighting]] = defaultdict(list)
    for (row,) in rows:
        found[row.recipient_id].append(sighting_of(row))
    return found
