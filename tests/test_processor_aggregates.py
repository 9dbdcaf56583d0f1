"""Aggregates are kept incrementally, O(batch), and still equal a rebuild (issue 6),
with every hit judged by the classifier in context (issue 7, B3)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text, update

from mailbeacon.core.hits import Hit, HitKind, new_hit_id
from mailbeacon.core.signals import CopyFacts, CopyHistory, judge, record
from mailbeacon.processor import cursor
from mailbeacon.processor.context import sighting_of
from mailbeacon.processor.derive import AT_ONCE, process_all, process_batch, rebuild
from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.hitlog import insert_ignoring_duplicates
from mailbeacon.store.tables import Base, Event, Link, Message, ProcessorCursor, Recipient, User
from tests.helpers import eventually
from tests.test_processor import T0, aggregate_columns, hit, recounted, seed

# (kind, message, recipient, link, seconds after T0, method, prefetch)
HITS = st.lists(
    st.tuples(
        st.sampled_from([HitKind.OPEN, HitKind.CLICK]),
        st.integers(0, 1),
        st.integers(0, 1),
        st.integers(0, 1),
        st.integers(0, 3 * 86_400),  # distinct and in arrival order, as a collector stamps them
        st.sampled_from(["GET", "GET", "HEAD"]),
        st.booleans(),
    ),
    max_size=80,
)


async def _fresh(engine: Any) -> list[tuple[Message, list[Recipient], list[Link]]]:
    """An empty database with two messages of two recipients and two links each."""
    async with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            await conn.execute(text(f"DELETE FROM {table.name}"))
    async with sessions(engine)() as db, db.begin():
        user = User(email="u@example.com", password_hash="x")
        db.add(user)
        await db.flush()
        messages = []
        for number in range(2):
            message = Message(
                user_id=user.id,
                message_id_header=f"<m{number}@example.com>",
                from_address="u@example.com",
                requested_opens=True,
                requested_links=True,
                track_opens=True,
                track_links=True,
                recipients=[
                    Recipient(address=f"{name}{number}@example.com", field="to")
                    for name in ("a", "b")
                ],
                links=[Link(url=f"https://example.com/{n}") for n in range(2)],
            )
            db.add(message)
            messages.append(message)
        await db.flush()
        return [(m, list(m.recipients), list(m.links)) for m in messages]


def _expected(
    seeded: list[tuple[Message, list[Recipient], list[Link]]], hits: list[Hit]
) -> dict[str, list[tuple[Any, ...]]]:
    """The aggregates computed in plain Python: each copy's hits judged in time
    order with its whole history in memory (the processor loads it from the
    database in batches), counted opens including those inferred from clicks."""
    histories: dict[int, CopyHistory] = {}
    counted: list[tuple[HitKind, Hit]] = []
    for h in sorted(hits, key=lambda h: h.received_at):
        links = frozenset(k.id for m, _, ks in seeded for k in ks if m.id == h.message_id)
        history = histories.setdefault(h.recipient_id, CopyHistory())
        sighting = sighting_of(h)
        judgement = judge(sighting, CopyFacts(pixel=False, link_ids=links), history, AT_ONCE)
        record(sighting, judgement, history)
        if judgement.counted:
            counted.append((h.kind, h))
            if judgement.inferred_open:
                counted.append((HitKind.OPEN, h))

    def tally(kind: HitKind, row_id: int, key: str) -> tuple[Any, ...]:
        times = [h.received_at for k, h in counted if k is kind and getattr(h, key) == row_id]
        if key == "link_id":  # an inferred open is no click of its link
            times = [h.received_at for k, h in counted if k is kind and h.link_id == row_id]
        return (len(times), min(times, default=None), max(times, default=None))

    def both(row_id: int, key: str) -> tuple[Any, ...]:
        return (row_id, *tally(HitKind.OPEN, row_id, key), *tally(HitKind.CLICK, row_id, key))

    result: dict[str, list[tuple[Any, ...]]] = {"messages": [], "recipients": [], "links": []}
    for message, recipients, links in seeded:
        result["messages"].append(both(message.id, "message_id"))
        result["recipients"] += [both(r.id, "recipient_id") for r in recipients]
        result["links"] += [(k.id, *tally(HitKind.CLICK, k.id, "link_id")) for k in links]
    for rows in result.values():
        rows.sort()
    return result


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=HITS, cuts=st.lists(st.integers(1, 25), min_size=1, max_size=6), data=st.data())
async def test_incremental_aggregates_in_random_batches_equal_a_rebuild(
    database_url: str, specs: list[Any], cuts: list[int], data: st.DataObject
) -> None:
    """Random hits, inserted in random chunks and processed in rounds of random
    sizes in between: every aggregate column equals the Python oracle, a recount
    of the events, and a rebuild from scratch."""
    engine = make_engine(database_url)
    try:
        seeded = await _fresh(engine)
        hits = []
        specs = sorted({spec[4]: spec for spec in specs}.values(), key=lambda spec: spec[4])
        for kind, m, r, k, seconds, method, prefetch in specs:
            message, recipients, links = seeded[m]
            hits.append(
                Hit(
                    new_hit_id(),
                    T0 + timedelta(seconds=seconds),
                    kind,
                    message.id,
                    recipients[r].id,
                    links[k].id if kind is HitKind.CLICK else None,
                    method,
                    prefetch,
                    "203.0.113.0",
                    "Mail",
                )
            )
        insert = insert_ignoring_duplicates(engine)
        start, turn = 0, 0
        while start < len(hits):
            chunk = hits[start : start + cuts[turn % len(cuts)]]
            start, turn = start + len(chunk), turn + 1
            async with engine.begin() as conn:
                await conn.execute(insert, [h.to_row() for h in chunk])
            for _ in range(data.draw(st.integers(0, 2), label="rounds")):
                await process_batch(engine, limit=data.draw(st.integers(1, 30), label="limit"))
        expected = _expected(seeded, hits)

        async def caught_up() -> bool:
            await process_all(engine, limit=data.draw(st.integers(1, 30), label="limit"))
            return await aggregate_columns(engine) == expected

        # Not always at once on PostgreSQL: a hit waits for every older writing
        # transaction on the server (other databases included) to end.
        await eventually(caught_up, timeout=30)
        assert await recounted(engine) == expected
        await rebuild(engine)
        await eventually(caught_up, timeout=30)
    finally:
        await engine.dispose()


async def test_aggregates_add_a_batch_to_the_stored_totals_without_recounting_history(
    database_url: str,
) -> None:
    """A round reads the stored totals and its own hits only, never the message's
    older events: stored totals with no events behind them are added to."""
    engine = make_engine(database_url)
    try:
        message, (a, _), link = await seed(engine)
        history = {
            "open_count": 1000,
            "first_open_at": T0 - timedelta(days=1),
            "last_open_at": T0 - timedelta(hours=1),
            "click_count": 500,
            "first_click_at": T0 - timedelta(days=2),
            "last_click_at": T0 + timedelta(days=2),
        }
        async with sessions(engine)() as db, db.begin():
            await db.execute(update(Message).values(**history))
            await db.execute(update(Recipient).where(Recipient.id == a.id).values(**history))
            await db.execute(
                update(Link).values(
                    click_count=500,
                    first_click_at=T0 - timedelta(days=2),
                    last_click_at=T0 + timedelta(days=2),
                )
            )
        async with engine.begin() as conn:
            await conn.execute(
                insert_ignoring_duplicates(engine),
                [
                    hit(HitKind.OPEN, message, a, 5).to_row(),
                    hit(HitKind.CLICK, message, a, 6, link_id=link.id).to_row(),
                ],
            )

        async def processed() -> bool:
            await process_all(engine)
            async with sessions(engine)() as db:
                return len(list(await db.scalars(select(Event.id)))) == 2

        await eventually(processed, timeout=30)
        after = {
            "open_count": 1001,
            "first_open_at": T0 - timedelta(days=1),
            "last_open_at": T0 + timedelta(minutes=5),
            "click_count": 501,
            "first_click_at": T0 - timedelta(days=2),
            "last_click_at": T0 + timedelta(days=2),
        }
        rows = await aggregate_columns(engine)
        assert rows["messages"] == [(message.id, *after.values())]
        assert rows["recipients"][0] == (a.id, *after.values())
        assert rows["links"] == [(link.id, *list(after.values())[3:])]
    finally:
        await engine.dispose()


async def test_a_failed_round_changes_neither_events_nor_aggregates_nor_cursor(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events, aggregates and cursor commit together: a round that fails at its
    last step (moving the cursor) leaves no trace, and the next round does it all."""
    engine = make_engine(database_url)
    try:
        message, (a, b), link = await seed(engine)
        async with engine.begin() as conn:
            await conn.execute(
                insert_ignoring_duplicates(engine),
                [
                    hit(HitKind.OPEN, message, a, 5).to_row(),
                    hit(HitKind.CLICK, message, b, 6, link_id=link.id).to_row(),
                ],
            )
        before = await aggregate_columns(engine)

        async def crash(*_: Any) -> None:
            raise RuntimeError("the process died here")

        monkeypatch.setattr(cursor, "advance", crash)

        async def crashed() -> bool:
            try:
                await process_all(engine)
            except RuntimeError:
                return True
            return False

        await eventually(crashed, timeout=30)  # the hits became ready and the round failed
        async with sessions(engine)() as db:
            assert list(await db.scalars(select(Event.id))) == []
            state = await db.get(ProcessorCursor, cursor.NAME)
            assert state is None or state.last_seq == 0
        assert await aggregate_columns(engine) == before
        monkeypatch.undo()
        assert await process_all(engine) == 2
        assert await aggregate_columns(engine) == await recounted(engine) != before
    finally:
        await engine.dispose()
