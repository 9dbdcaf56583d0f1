"""Honest signals end to end (issue 7, B3): one email, three recipients, three fates.

Over real HTTP and a real SMTP server, on SQLite and PostgreSQL, with the
shipped rules (hits settle before they are judged; a click right after
delivery with no open before it is a scanner's):
- Anna's copy is "opened" at delivery by Apple Mail Privacy Protection;
- Ben's copy has every link clicked within a second by a security scanner;
- Carl opens his copy an hour after it arrived, and clicks a link.
Only Carl's open and click count, turn icons solid and notify.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.tables import Notification, Recipient
from tests.conftest import LiveApp, SmtpRecorder
from tests.helpers import click_urls, delivered, eventually, pixel_url

OUTLOOK = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
HTML = (
    "<p>Hello,</p><p><a href='https://example.com/pricing'>Pricing</a> · "
    "<a href='https://example.com/demo'>Demo</a> · "
    "<a href='https://example.com/case-study'>Case study</a></p>"
)


async def _counts(live: LiveApp, message_id: int) -> dict[str, tuple[int, int]]:
    response = await live.client.get(f"/api/v1/messages/{message_id}", headers=live.auth())
    assert response.status_code == 200, response.text
    return {
        r["address"]: (r["opens"]["count"], r["clicks"]["count"])
        for r in response.json()["recipients"]
    }


async def test_a_prefetch_a_scanner_and_a_person_give_exactly_the_persons_signals(
    serve_app: Any, database_url: str, smtp_server: SmtpRecorder
) -> None:
    live: LiveApp = await serve_app(
        database_url,
        smtp_url=smtp_server.url,
        signal_settle_seconds=2,
        scanner_click_seconds=60,
    )
    response = await live.client.post(
        "/api/v1/messages",
        json={
            "to": ["anna@example.com", "ben@example.com", "carl@example.com"],
            "subject": "Prices for 2027",
            "html": HTML,
        },
        headers=live.auth(),
    )
    assert response.status_code == 201, response.text
    message_id = response.json()["id"]
    await delivered(live.client, message_id, live.auth())
    anna = smtp_server.to("anna@example.com").body("html")
    ben = smtp_server.to("ben@example.com").body("html")
    carl = smtp_server.to("carl@example.com").body("html")
    assert anna and ben and carl

    # Carl's copy reached his inbox an hour ago; the other two just now.
    engine = make_engine(live.settings.effective_database_url)
    try:
        async with sessions(engine)() as db, db.begin():
            await db.execute(
                update(Recipient)
                .where(Recipient.address == "carl@example.com")
                .values(sent_at=datetime.now(UTC) - timedelta(hours=1))
            )

        async with httpx.AsyncClient() as web:
            # Apple's relay fetches Anna's pixel as the mail arrives.
            pixel = await web.get(pixel_url(anna), headers={"User-Agent": "Mozilla/5.0"})
            assert pixel.status_code == 200
            # A scanner follows every link in Ben's copy within a second.
            for url in click_urls(ben)[:3]:
                click = await web.get(url, headers={"User-Agent": CHROME}, follow_redirects=False)
                assert click.status_code == 302
            # Carl reads in Outlook, then opens the demo in his browser.
            pixel = await web.get(pixel_url(carl), headers={"User-Agent": OUTLOOK})
            assert pixel.status_code == 200
            demo = next(u for u in click_urls(carl) if u)
            click = await web.get(
                click_urls(carl)[1], headers={"User-Agent": CHROME}, follow_redirects=False
            )
            assert click.status_code == 302 and demo

        async def judged() -> list[Any] | None:
            detail = await live.client.get(f"/api/v1/messages/{message_id}", headers=live.auth())
            events = detail.json()["events"]
            return events if len(events) == 6 else None

        events = await eventually(judged, timeout=30)
        by_recipient: dict[str, list[tuple[str, str, bool]]] = {}
        for event in events:
            by_recipient.setdefault(event["recipient"], []).append(
                (event["kind"], event["verdict"], event["counted"])
            )
        assert by_recipient["anna@example.com"] == [("open", "prefetch", False)]
        assert by_recipient["ben@example.com"] == [("click", "scanner", False)] * 3
        assert by_recipient["carl@example.com"] == [
            ("open", "human", True),
            ("click", "human", True),
        ]
        assert await _counts(live, message_id) == {
            "anna@example.com": (0, 0),
            "ben@example.com": (0, 0),
            "carl@example.com": (1, 1),
        }

        async with sessions(engine)() as db:
            bells = (
                await db.execute(
                    select(Recipient.address, Notification.kind)
                    .join(Recipient, Recipient.id == Notification.recipient_id)
                    .order_by(Notification.occurred_at)
                )
            ).all()
        assert [tuple(bell) for bell in bells] == [
            ("carl@example.com", "open"),
            ("carl@example.com", "click"),
        ]
    finally:
        await engine.dispose()
