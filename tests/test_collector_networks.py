"""Network tags at the collector (B3): the full address is looked up before truncation.

Real HTTP to the whole app behind its trusted-proxy layer, so the test chooses the client
address the way a reverse proxy would tell it (X-Forwarded-For from 127.0.0.1).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from mailbeacon.core.hits import Hit, HitKind
from mailbeacon.core.tokens import KeyRing
from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.networks import NetworkSource, refresh
from mailbeacon.store.tables import HitRow
from tests.conftest import TEST_SECRET, LiveApp, SmtpRecorder
from tests.helpers import eventually

keys = KeyRing.from_secrets([TEST_SECRET])


async def start(serve_app: Any, database_url: str, smtp: SmtpRecorder) -> LiveApp:
    live: LiveApp = await serve_app(database_url, smtp_url=smtp.url, trusted_proxies="127.0.0.1")
    return live


async def rows(live: LiveApp, count: int) -> list[HitRow]:
    async def found() -> list[HitRow] | None:
        engine = make_engine(live.settings.effective_database_url)
        try:
            async with sessions(engine)() as db:
                result = list(await db.scalars(select(HitRow).order_by(HitRow.seq)))
        finally:
            await engine.dispose()
        return result if len(result) >= count else None

    result: list[HitRow] = await eventually(found, timeout=15)
    return result


async def open_from(live: LiveApp, address: str, recipient: int = 1) -> None:
    response = await live.client.get(
        f"/o/{keys.sign_open(1, recipient)}.gif", headers={"X-Forwarded-For": address}
    )
    assert response.status_code == 200


def network_source(live: LiveApp) -> NetworkSource:
    layer: Any = live.app
    while not hasattr(layer, "networks"):
        layer = layer.app
    source = layer.networks
    assert isinstance(source, NetworkSource)
    return source


async def test_hits_are_tagged_from_the_full_address_and_stored_truncated(
    serve_app: Any, database_url: str, smtp_server: SmtpRecorder
) -> None:
    live = await start(serve_app, database_url, smtp_server)
    # The sample's relay ranges end at 172.224.226.59, inside the /24 kept: only the full
    # address tells 172.224.226.33 (relay) from 172.224.226.100 (not in the sample).
    for address in (
        "172.224.226.33",
        "172.224.226.100",
        "2a02:26f7:b3c0:4000::17",
        "66.249.84.9",
        "40.107.3.3",
        "35.210.0.1",
        "203.0.113.9",
    ):
        await open_from(live, address)
    recorded = await rows(live, 7)
    assert [(row.ip, row.network) for row in recorded] == [
        ("172.224.226.0", "apple-relay"),
        ("172.224.226.0", ""),
        ("2a02:26f7:b3c0::", "apple-relay"),
        ("66.249.84.0", "google"),
        ("40.107.3.0", "microsoft"),
        ("35.210.0.0", "datacenter"),
        ("203.0.113.0", ""),
    ]


async def test_a_refreshed_list_is_used_without_a_restart(
    serve_app: Any, database_url: str, smtp_server: SmtpRecorder, tmp_path: Any
) -> None:
    live = await start(serve_app, database_url, smtp_server)
    await open_from(live, "198.51.100.7")
    listing = tmp_path / "sophos.txt"
    listing.write_text("# Sophos Email, as the operator found it\n198.51.100.0/24\n")
    refresh(live.settings, "sophos", str(listing))
    source = network_source(live)
    source._next_check = 0  # the once-a-minute check is due now
    await open_from(live, "198.51.100.8")  # starts the check in a thread; this hit: old table

    async def reloaded() -> bool:
        return source.current().tag_of("198.51.100.9") == "sophos"

    await eventually(reloaded)
    await open_from(live, "198.51.100.9")
    recorded = await rows(live, 3)
    assert [row.network for row in recorded] == ["", "", "sophos"]


def test_spooled_hits_from_before_tagging_read_back_untagged() -> None:
    record = {
        "hit_id": "ab" * 16,
        "received_at": "2026-11-29T12:00:00+00:00",
        "kind": "open",
        "message_id": 1,
        "recipient_id": 2,
        "link_id": None,
        "method": "GET",
        "prefetch": False,
        "ip": "172.224.226.0",
        "user_agent": "Mozilla/5.0",
    }
    hit = Hit.from_record(record)
    assert hit.kind is HitKind.OPEN and hit.network == ""
    tagged = Hit.from_record({**record, "network": "apple-relay"})
    assert tagged.network == "apple-relay"
    assert Hit.from_record(tagged.to_record()) == tagged
