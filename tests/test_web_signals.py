"""Honest signals in the product (B3, B4): pages, tooltips, API and bell with seeded events.

The processor that fills these columns is built separately; here the events,
counts and notifications are written straight into the database (`seed`), so
these tests prove what the product shows for each kind of event, on SQLite
and PostgreSQL, over real HTTP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.notifications import notifications_after
from mailbeacon.store.tables import Event, Link, Notification, Recipient, User
from mailbeacon.web.i18n import Localizer
from mailbeacon.web.pages.notifications import describe
from tests.conftest import LiveApp, SmtpRecorder
from tests.helpers import delivered
from tests.web_helpers import sign_in

OUTLOOK = (
    "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 10.0; WOW64; Trident/7.0; .NET4.0C; "
    ".NET4.0E; Microsoft Outlook 16.0.17928; Microsoft Outlook 16.0.17928; ms-office; "
    "MSOffice 16)"
)
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)
MPP = "Mozilla/5.0"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
HONEYPOT_URL = "https://example.com/__mb_trap"


@dataclass
class Seeded:
    message_id: int
    ids: dict[str, int]  # address -> recipient id


async def send(live: LiveApp) -> int:
    response = await live.client.post(
        "/api/v1/messages",
        json={
            "to": ["Anna Berg <anna@example.com>", "ben@example.com"],
            "cc": ["Cleo <cleo@example.com>", "dave@example.com"],
            "subject": "Pricing",
            "html": '<p>See <a href="https://example.com/pricing">pricing</a> and '
            '<a href="https://example.com/terms">terms</a>.</p>',
            "track_opens": True,
            "track_links": True,
        },
        headers=live.auth(),
    )
    assert response.status_code == 201, response.text
    message_id = int(response.json()["id"])
    await delivered(live.client, message_id, live.auth())
    return message_id


async def seed(live: LiveApp) -> Seeded:
    """One email to four people, each copy showing one kind of reading.

    - anna: opened by a person (Outlook), a repeat, a possibly forwarded open
      from an iPhone, and an Apple Mail Privacy Protection prefetch;
    - ben: only machine activity (a scanner clicking every link at once);
    - cleo: images blocked, a counted click that stands for the open;
    - dave: refused by the server, so not delivered.
    Plus a honeypot link that only the scanner followed.
    """
    message_id = await send(live)
    engine = make_engine(live.settings.effective_database_url)
    seq = iter(range(10_000_000 + message_id * 100, 10_000_000 + message_id * 100 + 100))
    try:
        async with sessions(engine)() as db, db.begin():
            recipients = {
                r.address: r
                for r in (
                    await db.scalars(select_recipients(message_id))  # type: ignore[arg-type]
                ).all()
            }
            links = {
                link.url: link
                for link in (
                    await db.scalars(select_links(message_id))  # type: ignore[arg-type]
                ).all()
            }
            trap = Link(message_id=message_id, url=HONEYPOT_URL, honeypot=True)
            db.add(trap)
            await db.flush()
            anna, ben, cleo = (
                recipients[a] for a in ("anna@example.com", "ben@example.com", "cleo@example.com")
            )
            pricing = links["https://example.com/pricing"].id

            def event(r: Recipient, minutes: float, **kw: Any) -> Event:
                values: dict[str, Any] = {
                    "hit_seq": next(seq),
                    "message_id": message_id,
                    "recipient_id": r.id,
                    "kind": "open",
                    "verdict": "human",
                    "reason": "mail_client",
                    "counted": False,
                    "occurred_at": T0 + timedelta(minutes=minutes),
                    "ip": "192.0.2.0",
                    "user_agent": OUTLOOK,
                }
                values.update(kw)
                return Event(**values)

            db.add_all(
                [
                    event(anna, 0, verdict="prefetch", reason="apple_mpp", user_agent=MPP),
                    event(anna, 60, counted=True),
                    event(anna, 61, duplicate=True),
                    event(anna, 180, forwarded=True, user_agent=IPHONE, ip="198.51.100.0"),
                    event(
                        ben,
                        0.1,
                        kind="click",
                        link_id=pricing,
                        verdict="scanner",
                        reason="all_links",
                        user_agent=CHROME,
                    ),
                    event(
                        ben,
                        0.1,
                        kind="click",
                        link_id=trap.id,
                        verdict="scanner",
                        reason="honeypot",
                        user_agent=CHROME,
                    ),
                    event(
                        cleo,
                        30,
                        kind="click",
                        link_id=pricing,
                        verdict="human",
                        reason="browser",
                        counted=True,
                        inferred_open=True,
                        user_agent=CHROME,
                    ),
                ]
            )
            counts: dict[str, dict[str, Any]] = {
                "anna@example.com": {
                    "open_count": 1,
                    "person_open_count": 1,
                    "machine_event_count": 1,
                    "forwarded_count": 1,
                    "reader_agent": OUTLOOK,
                    "first_open_at": T0 + timedelta(minutes=60),
                    "last_open_at": T0 + timedelta(minutes=60),
                },
                "ben@example.com": {"machine_event_count": 2},
                "cleo@example.com": {
                    "open_count": 1,
                    "click_count": 1,
                    "inferred_open_count": 1,
                    "reader_agent": CHROME,
                    "first_open_at": T0 + timedelta(minutes=30),
                    "last_open_at": T0 + timedelta(minutes=30),
                    "first_click_at": T0 + timedelta(minutes=30),
                    "last_click_at": T0 + timedelta(minutes=30),
                },
            }
            for address, values in counts.items():
                await db.execute(
                    update(Recipient).where(Recipient.id == recipients[address].id).values(**values)
                )
            ids = {address: r.id for address, r in recipients.items()}
            # The bell: anna's first open, a re-open after the quiet gap, a burst of clicks.
            for hit, minutes, kind, r, link, events, link_count in (
                (next(seq), 60, "open", anna, None, 1, 1),
                (next(seq), 400, "open", anna, None, 1, 1),
                (next(seq), 30, "click", cleo, pricing, 3, 3),
                (next(seq), 31, "click", cleo, pricing, 1, 1),
            ):
                db.add(
                    Notification(
                        user_id=live.user_id,
                        hit_seq=hit,
                        message_id=message_id,
                        recipient_id=r.id,
                        link_id=link,
                        kind=kind,
                        occurred_at=T0 + timedelta(minutes=minutes),
                        event_count=events,
                        link_count=link_count,
                    )
                )
    finally:
        await engine.dispose()
    return Seeded(message_id, ids)


def select_recipients(message_id: int) -> object:
    from sqlalchemy import select

    return select(Recipient).where(Recipient.message_id == message_id)


def select_links(message_id: int) -> object:
    from sqlalchemy import select

    return select(Link).where(Link.message_id == message_id)


def section(html: str, start: str, end: str = "</table>") -> str:
    assert start in html, start
    return html.split(start, 1)[1].split(end, 1)[0]


def recipient_row(html: str, recipient_id: int) -> str:
    return section(html, f'<tr data-recipient-id="{recipient_id}">', "</tr>")


def tip(html: str, scope: str, kind: str) -> str:
    return section(html, f'id="tip-{scope}-{kind}"', "</div>\n</div>")


async def test_message_page_says_each_reading_and_folds_machine_events_and_repeats(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    smtp_server.refuse.add("dave@example.com")
    seeded = await seed(live)
    browser = await sign_in(live, live.email)
    try:
        page = (await browser.get(f"/mail/{seeded.message_id}")).text
    finally:
        await browser.aclose()
    ids = seeded.ids
    anna = recipient_row(page, ids["anna@example.com"])
    assert "Opened by a person · Possibly forwarded" in anna
    assert "Outlook" in anna and "Mozilla/4.0" not in anna  # the client in words
    assert "Only machine activity" in recipient_row(page, ids["ben@example.com"])
    cleo = recipient_row(page, ids["cleo@example.com"])
    assert "Opened (images blocked, seen from a click)" in cleo
    dave = recipient_row(page, ids["dave@example.com"])
    assert "Not delivered" in dave and "0 opens" not in dave and "0 clicks" not in dave
    dave_tip = tip(page, f"r{ids['dave@example.com']}", "open")
    assert "Not delivered" in dave_tip and "Not opened yet" not in dave_tip

    shown = section(page, 'class="list responsive timeline"')
    assert shown.count("<tr class=") == 3  # anna's open, her forwarded open, cleo's click
    assert "Possibly forwarded" in shown
    assert "opened (inferred from a click)" in shown
    machine = section(page, '<details class="folded machine-events">', "</details>")
    assert "2 machine events" not in machine  # three: the prefetch and the scanner's two
    assert "3 machine events" in machine
    assert "Apple Mail Privacy Protection loads images when mail arrives" in machine
    assert "Every link of the email was clicked at once." in machine
    assert "Privacy prefetch" in machine and "Scanner" in machine
    repeats = section(page, '<details class="folded repeats">', "</details>")
    assert "1 repeat" in repeats
    # The tooltip of a copy's open icon says the status in words and the counted time.
    anna_tip = tip(page, f"r{ids['anna@example.com']}", "open")
    assert "Opened by a person" in anna_tip and "Opened 1 time" in anna_tip
    # The honeypot never appears where a user sees links.
    assert HONEYPOT_URL not in page


async def test_list_tooltip_and_contact_page_say_how_each_reader_opened(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    seeded = await seed(live)
    browser = await sign_in(live, live.email)
    try:
        listing = (await browser.get("/mail")).text
        contact = (await browser.get("/contacts/cleo@example.com")).text
        ben = (await browser.get("/contacts/ben@example.com")).text
    finally:
        await browser.aclose()
    message_tip = tip(listing, f"m{seeded.message_id}", "open")
    assert "Anna Berg" in message_tip and "Opened by a person" in message_tip
    assert "Cleo" in message_tip and "images blocked" in message_tip
    assert "ben@example.com" not in message_tip  # a scanner is nobody's open
    assert "Opened (images blocked, seen from a click)" in contact
    assert "Chrome on Windows" in contact
    assert "Only machine activity" in ben


async def test_api_exposes_class_reason_and_reading(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    smtp_server.refuse.add("dave@example.com")
    seeded = await seed(live)
    detail = (
        await live.client.get(f"/api/v1/messages/{seeded.message_id}", headers=live.auth())
    ).json()
    readings = {r["address"]: r for r in detail["recipients"]}
    assert readings["anna@example.com"]["reading"] == "opened_by_person"
    assert readings["anna@example.com"]["possibly_forwarded"] is True
    assert readings["anna@example.com"]["counts"] == {
        "person_opens": 1,
        "proxy_opens": 0,
        "inferred_opens": 0,
        "machine_events": 1,
        "forwarded_opens": 1,
    }
    assert "Outlook" in readings["anna@example.com"]["client"]
    assert readings["ben@example.com"]["reading"] == "machine_only"
    assert readings["cleo@example.com"]["reading"] == "opened_inferred"
    assert readings["dave@example.com"]["reading"] == "not_delivered"
    by_reason = {e["reason"]: e for e in detail["events"]}
    mpp = by_reason["apple_mpp"]
    assert mpp["class"] == "prefetch" and mpp["counted"] is False
    assert mpp["reason_text"].startswith("Apple Mail Privacy Protection loads images")
    assert by_reason["browser"]["inferred_open"] is True
    assert by_reason["browser"]["client"] == "Chrome on Windows"
    assert any(e["forwarded"] for e in detail["events"])
    assert any(e["duplicate"] for e in detail["events"])
    assert all(link["url"] != HONEYPOT_URL for link in detail["links"])
    assert HONEYPOT_URL not in str(detail)
    listed = (await live.client.get("/api/v1/messages", headers=live.auth())).json()
    assert listed["items"][0]["recipients"][0]["reading"] == "opened_by_person"
    schema = (await live.client.get("/api/v1/openapi.json")).json()["components"]["schemas"]
    assert {"class", "reason", "reason_text", "client"} <= set(schema["EventOut"]["properties"])
    assert {"reading", "possibly_forwarded", "counts", "client"} <= set(
        schema["RecipientOut"]["properties"]
    )


async def test_api_reason_text_is_in_the_users_language(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    seeded = await seed(live)
    engine = make_engine(live.settings.effective_database_url)
    try:
        async with sessions(engine)() as db, db.begin():
            await db.execute(update(User).where(User.id == live.user_id).values(locale="de"))
    finally:
        await engine.dispose()
    detail = (
        await live.client.get(f"/api/v1/messages/{seeded.message_id}", headers=live.auth())
    ).json()
    mpp = next(e for e in detail["events"] if e["reason"] == "apple_mpp")
    assert mpp["class"] == "prefetch"
    assert "Apple" in mpp["reason_text"] and "whether or not" not in mpp["reason_text"]


async def test_bell_groups_clicks_and_says_reopen(live: LiveApp, smtp_server: SmtpRecorder) -> None:
    await seed(live)
    browser = await sign_in(live, live.email)
    try:
        feed = (await browser.get("/notifications")).text
    finally:
        await browser.aclose()
    texts = re.findall(r'class="notify-text"[^>]*>([^<]+)<', feed)
    assert "Cleo clicked 3 links in “Pricing”" in texts
    assert "Cleo clicked https://example.com/pricing in “Pricing”" in texts
    assert "Anna Berg opened “Pricing” again" in texts
    assert "Anna Berg opened “Pricing”" in texts
    # The live bell reads the same items: only the later open is a re-open, and a
    # page of new items that starts after the first open still knows it.
    engine = make_engine(live.settings.effective_database_url)
    try:
        async with sessions(engine)() as db:
            fresh = await notifications_after(db, live.user_id, 0, 10)
            opens = [i for i in fresh if i.kind == "open"]
            assert [i.reopen for i in opens] == [False, True]
            newest = await notifications_after(db, live.user_id, opens[0].id, 10)
            assert [i.reopen for i in newest if i.kind == "open"] == [True]
            burst = next(i for i in fresh if i.link_count == 3)
            assert describe(burst, Localizer("sv")) == "Cleo klickade på 3 länkar i ”Pricing”"
    finally:
        await engine.dispose()
