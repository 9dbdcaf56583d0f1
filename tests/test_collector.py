"""The collector over real HTTP: answers always, records only what is genuine (B10, rules 1-2)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from mailbeacon.collector.app import location_header
from mailbeacon.core.tokens import KeyRing
from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.tables import HitRow
from tests.conftest import TEST_SECRET, LiveApp
from tests.helpers import eventually

keys = KeyRing.from_secrets([TEST_SECRET])
forger = KeyRing.from_secrets(["someone-elses-secret-0123456789"])


async def hits(live: LiveApp, expected: int = 0) -> list[HitRow]:
    """The hit log; with `expected`, once it holds that many rows.

    Every answered hit is durable, in the database or, while the database is slow
    or away, in the spool, whose replay moves it in within a second or so.
    """

    async def rows() -> list[HitRow]:
        engine = make_engine(live.settings.effective_database_url)
        try:
            async with sessions(engine)() as db:
                return list(await db.scalars(select(HitRow).order_by(HitRow.seq)))
        finally:
            await engine.dispose()

    if not expected:
        return await rows()

    async def enough() -> list[HitRow] | None:
        found = await rows()
        return found if len(found) >= expected else None

    result: list[HitRow] = await eventually(enough, timeout=15)
    return result


async def test_pixel_answers_a_gif_and_records_the_hit(live: LiveApp) -> None:
    response = await live.client.get(
        f"/o/{keys.sign_open(7, 9)}.gif",
        headers={"User-Agent": "Mozilla/5.0 <script>alert(1)</script>"},
    )
    assert response.status_code == 200
    assert response.content[:6] == b"GIF89a" and len(response.content) == 43
    recorded = await hits(live, 1)
    assert [(h.kind, h.message_id, h.recipient_id, h.method) for h in recorded] == [
        ("open", 7, 9, "GET")
    ]
    assert recorded[0].user_agent == "Mozilla/5.0 <script>alert(1)</script>"
    assert recorded[0].ip == "127.0.0.0"  # truncated by default (B7)
    assert len(recorded[0].hit_id) == 32


@pytest.mark.parametrize(
    "path",
    [
        "/o/garbage.gif",
        "/o/.gif",
        "/o/",
        f"/o/{forger.sign_open(1, 1)}.gif",
        f"/o/{keys.sign_click(1, 1, 1, 'https://x.example')}.gif",
        "/o/" + "A" * 20_000 + ".gif",
        "/o/%00%ff%fe.gif",
    ],
)
async def test_bad_pixel_tokens_still_get_a_gif_and_record_nothing(
    live: LiveApp, path: str
) -> None:
    """Rule 1 and 2: never a broken image, never a forged hit."""
    response = await live.client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert await hits(live) == []


@pytest.mark.parametrize(
    "path",
    [
        "/c/garbage",
        "/c/",
        f"/c/{forger.sign_click(1, 1, 1, 'https://evil.example')}",
        f"/c/{keys.sign_open(1, 1)}",
        f"/c/{keys.sign_click(1, 1, 1, 'https://example.com/')[:-2]}",
    ],
)
async def test_forged_or_altered_click_redirects_nowhere(live: LiveApp, path: str) -> None:
    response = await live.client.get(path, follow_redirects=False)
    assert response.status_code == 404
    assert "location" not in response.headers
    assert "not valid" in response.text
    assert await hits(live) == []


async def test_click_redirects_to_the_signed_destination(live: LiveApp) -> None:
    url = "https://example.com/a path/ü?q=1&r=<x>#frag"
    response = await live.client.get(f"/c/{keys.sign_click(3, 4, 5, url)}", follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == location_header(url).decode()
    assert response.headers["location"] == "https://example.com/a%20path/%C3%BC?q=1&r=%3Cx%3E#frag"
    [hit] = await hits(live, 1)
    assert (hit.kind, hit.message_id, hit.recipient_id, hit.link_id) == ("click", 3, 4, 5)


def test_location_header_cannot_be_injected() -> None:
    assert location_header("https://x.example/\r\nSet-Cookie: a=b") == (
        b"https://x.example/%0D%0ASet-Cookie:%20a=b"
    )


async def test_head_and_prefetch_are_answered_and_labelled(live: LiveApp) -> None:
    token = keys.sign_open(1, 2)
    head = await live.client.head(f"/o/{token}.gif")
    assert head.status_code == 200 and head.content == b""
    prefetch = await live.client.get(f"/o/{token}.gif", headers={"Sec-Purpose": "prefetch"})
    assert prefetch.status_code == 200
    legacy = await live.client.get(f"/o/{token}.gif", headers={"Purpose": "prefetch"})
    assert legacy.status_code == 200
    assert sorted((h.method, h.prefetch) for h in await hits(live, 3)) == [
        ("GET", True),
        ("GET", True),
        ("HEAD", False),
    ]


async def test_other_methods_get_an_answer_but_no_hit(live: LiveApp) -> None:
    response = await live.client.post(f"/o/{keys.sign_open(1, 2)}.gif", content=b"x" * 10_000)
    assert response.status_code == 200
    assert await hits(live) == []


async def test_concurrent_hits_are_all_recorded_once(live: LiveApp) -> None:
    """Group commit: 200 concurrent hits, 200 rows, each with its own id."""
    import asyncio

    async with httpx.AsyncClient(
        base_url=live.base_url, limits=httpx.Limits(max_connections=50)
    ) as c:
        responses = await asyncio.gather(
            *(c.get(f"/o/{keys.sign_open(1, n)}.gif") for n in range(200))
        )
    assert {r.status_code for r in responses} == {200}
    recorded = await hits(live, 200)
    assert len(recorded) == 200 and len({h.hit_id for h in recorded}) == 200
    assert sorted(h.recipient_id for h in recorded) == list(range(200))


async def test_unknown_paths_reach_the_web_app(live: LiveApp) -> None:
    response = await live.client.get("/definitely-not-here")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "content-security-policy" in response.headers  # the web app's, not the collector's
    api = await live.client.get("/api/v1/nothing")
    assert api.status_code == 404 and api.json() == {"detail": "Not Found"}


async def test_hits_for_unknown_recipients_are_kept_but_derive_nothing(live: LiveApp) -> None:
    """A validly signed token for ids that do not exist: a fact, not an event."""
    await live.client.get(f"/o/{keys.sign_open(999, 999)}.gif")
    engine = make_engine(live.settings.effective_database_url)
    try:
        from mailbeacon.store.tables import Event, ProcessorCursor

        async def processed() -> Any:
            async with sessions(engine)() as db:
                cursor = await db.get(ProcessorCursor, "events")
                return cursor is not None and cursor.last_seq > 0

        await eventually(processed)
        async with sessions(engine)() as db:
            assert await db.scalar(select(func.count(Event.id))) == 0
    finally:
        await engine.dispose()


async def test_oversized_requests_are_refused_before_parsing(live: LiveApp) -> None:
    """Rule 6: a huge body gets a clear 413 and changes nothing; hits are unaffected."""
    huge = b"x" * (13 * 1024 * 1024)
    response = await live.client.post("/api/v1/messages", content=huge, headers=live.auth())
    assert response.status_code == 413

    async def chunks() -> Any:
        for _ in range(14):
            yield b"y" * (1024 * 1024)

    response = await live.client.post("/api/v1/messages", content=chunks(), headers=live.auth())
    assert response.status_code == 413
    listing = await live.client.get("/api/v1/messages", headers=live.auth())
    assert listing.json()["total"] == 0
    pixel = await live.client.get(f"/o/{keys.sign_open(1, 1)}.gif")
    assert pixel.status_code == 200
