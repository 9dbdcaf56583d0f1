"""B6: the analytics page and its CSVs give the right numbers for a seeded history,
on SQLite and PostgreSQL; only counted events count; another user's mail never shows (S7).

The history is written straight into the tables (as the worker, the processor and
the inbox watch would have left it), in March 2026, and read back through a custom
period, so no test depends on today's date.
"""

from __future__ import annotations

import csv
import html
import io
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import httpx
from sqlalchemy import update

from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.tables import Event, Link, Message, Recipient, User
from tests.conftest import LiveApp
from tests.web_helpers import LOGIN_CSRF, PASSWORD, sign_in

PERIOD = "period=custom&from=2026-03-02&to=2026-03-04"
ZONE = "Europe/Stockholm"  # UTC+1 in March 2026: 23:30 UTC on the 2nd is the 3rd there
ANNA_NAME = '=SUM(A1) "Anna"'  # a name a spreadsheet would run, with quotes to escape
PRICING = "https://example.com/pricing?a=1,b"  # a comma: the CSV must quote it
SECRET = "https://secret.example/other-users-link"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


@dataclass
class Copy:
    address: str
    name: str = ""
    status: str = "sent"
    opened_after: timedelta | None = None
    opens: int = 0
    clicks: int = 0
    replies: int = 0
    auto_replied: bool = False


class Seeder:
    """Writes messages, copies, links and events as the rest of MailBeacon would."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seq = 0

    async def message(
        self, user_id: int, sent: datetime, copies: list[Copy], links: list[str] = ()
    ) -> tuple[Message, list[Recipient], list[Link]]:
        engine = make_engine(self.url)
        try:
            async with sessions(engine)() as db, db.begin():
                message = Message(
                    user_id=user_id,
                    message_id_header=f"<{sent.timestamp()}-{self.seq}@example.com>",
                    from_address="owner@example.com",
                    subject="Pricing",
                    requested_opens=True,
                    requested_links=True,
                    track_opens=True,
                    track_links=True,
                    status="sent",
                    created_at=sent - timedelta(seconds=5),
                    sent_at=sent,
                )
                self.seq += 1
                for copy in copies:
                    first = sent + copy.opened_after if copy.opened_after is not None else None
                    message.recipients.append(
                        Recipient(
                            address=copy.address,
                            name=copy.name,
                            field="to",
                            status=copy.status,
                            sent_at=sent,
                            open_count=copy.opens,
                            first_open_at=first,
                            last_open_at=first,
                            click_count=copy.clicks,
                            reply_count=copy.replies,
                            replied_at=sent + timedelta(hours=3) if copy.replies else None,
                            auto_replied_at=sent + timedelta(minutes=1)
                            if copy.auto_replied
                            else None,
                        )
                    )
                rows = [Link(url=url) for url in links]
                message.links.extend(rows)
                db.add(message)
                await db.flush()
                return message, list(message.recipients), rows
        finally:
            await engine.dispose()

    async def click(
        self, message: Message, recipient: Recipient, link: Link, when: datetime, counted: bool
    ) -> None:
        engine = make_engine(self.url)
        self.seq += 1
        try:
            async with sessions(engine)() as db, db.begin():
                db.add(
                    Event(
                        hit_seq=self.seq,
                        message_id=message.id,
                        recipient_id=recipient.id,
                        link_id=link.id,
                        kind="click",
                        verdict="human" if counted else "scanner",
                        counted=counted,
                        occurred_at=when,
                        ip="192.0.2.0",
                        user_agent="Mozilla/5.0",
                    )
                )
        finally:
            await engine.dispose()


async def seed_history(url: str, user_id: int, other_user_id: int) -> None:
    """Three emails in the period, one after it, and another user's, in March 2026."""
    seed = Seeder(url)
    # Monday 2 March, 10:00 in Stockholm: Anna opens in 5 minutes, clicks, replies;
    # Ben never opens; Carl's copy bounced (not delivered, so not in the rates).
    first, (anna, ben, _carl), (pricing,) = await seed.message(
        user_id,
        at(2, 9),
        [
            Copy(
                "anna@example.com",
                ANNA_NAME,
                opened_after=timedelta(minutes=5),
                opens=2,
                clicks=1,
                replies=1,
            ),
            Copy("ben@example.com"),
            Copy("carl@example.com", status="bounced"),
        ],
        [PRICING],
    )
    await seed.click(first, anna, pricing, at(2, 9, 7), counted=True)
    # A security scanner pre-clicked Ben's link: kept, never counted (B3).
    await seed.click(first, ben, pricing, at(2, 9, 1), counted=False)
    # 23:30 UTC on the 2nd is 00:30 on Tuesday the 3rd in Stockholm.
    await seed.message(
        user_id,
        at(2, 23, 30),
        [
            Copy("Anna@Example.com", opened_after=timedelta(hours=2), opens=1),
            Copy("dora@example.com", "Dora", opened_after=timedelta(hours=30), opens=1),
        ],
    )
    # Eve's out-of-office answer is labelled, never a reply (B11).
    await seed.message(user_id, at(4, 10), [Copy("eve@example.com", auto_replied=True)])
    # Thursday the 5th: after the period.
    await seed.message(
        user_id, at(5, 10), [Copy("anna@example.com", opened_after=timedelta(minutes=1), opens=9)]
    )
    # Another user's mail in the same days: never on our page (S7).
    other, (stranger,), (secret,) = await seed.message(
        other_user_id,
        at(3, 10),
        [
            Copy(
                "stranger@example.com",
                "Stranger",
                opened_after=timedelta(minutes=1),
                opens=5,
                clicks=3,
            )
        ],
        [SECRET],
    )
    await seed.click(other, stranger, secret, at(3, 10, 2), counted=True)


async def set_zone(url: str, user_id: int, zone: str) -> None:
    engine = make_engine(url)
    try:
        async with sessions(engine)() as db, db.begin():
            await db.execute(
                update(User).where(User.id == user_id).values(timezone=zone, timezone_chosen=True)
            )
    finally:
        await engine.dispose()


class Tables(HTMLParser):
    """The page's data tables as lists of rows of cell texts, by table id."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.kpis: dict[str, str] = {}
        self.current: str | None = None
        self.cell: list[str] | None = None
        self.kpi: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "table" and (values.get("id") or "").startswith("table-"):
            self.current = (values["id"] or "")[6:]
            self.tables[self.current] = []
        elif self.current and tag == "tr":
            self.tables[self.current].append([])
        elif self.current and tag in ("td", "th"):
            self.cell = []
        elif tag == "dd" and values.get("data-kpi"):
            self.kpi = values["data-kpi"]
            self.kpis[self.kpi] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.current = None
        elif self.current and tag in ("td", "th") and self.cell is not None:
            self.tables[self.current][-1].append("".join(self.cell).strip())
            self.cell = None
        elif tag == "dd":
            self.kpi = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)
        if self.kpi:
            self.kpis[self.kpi] += data.strip()


def read_csv(text: str) -> list[list[str]]:
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


async def seeded(live: LiveApp) -> int:
    other_id, _ = await live.add_user("other@example.com")
    url = live.settings.effective_database_url
    await seed_history(url, live.user_id, other_id)
    await set_zone(url, live.user_id, ZONE)
    return other_id


async def test_seeded_history_gives_the_right_numbers_in_tables_and_csv(live: LiveApp) -> None:
    await seeded(live)
    browser = await sign_in(live, live.email)
    try:
        page = await browser.get(f"/analytics?{PERIOD}")
        assert page.status_code == 200, page.text
        found = Tables(page.text)
        assert found.kpis == {
            "messages": "3",
            "sent": "6",
            "delivered": "5",
            "open-rate": "60.0 %",
            "click-rate": "20.0 %",
            "reply-rate": "20.0 %",
            "median": "2 hr",
        }
        # Per day in Stockholm: the 23:30 UTC email counts on Tuesday the 3rd.
        assert found.tables["rates"][1:] == [
            ["Mar 2, 2026", "2", "1", "50.0 %", "1", "50.0 %", "1", "50.0 %"],
            ["Mar 3, 2026", "2", "2", "100.0 %", "0", "0.0 %", "0", "0.0 %"],
            ["Mar 4, 2026", "1", "0", "0.0 %", "0", "0.0 %", "0", "0.0 %"],
        ]
        assert found.tables["volume"][1:] == [
            ["Mar 2, 2026", "3", "2"],
            ["Mar 3, 2026", "2", "2"],
            ["Mar 4, 2026", "1", "1"],
        ]
        assert [row[1] for row in found.tables["first-open"][1:]] == [
            "1",
            "0",
            "1",
            "0",
            "1",
            "0",
            "0",
        ]
        # The scanner's click on Ben's copy is not a click.
        assert found.tables["links"][1:] == [[PRICING, "1", "1"]]
        assert found.tables["contacts"][1:] == [
            ["anna@example.com", ANNA_NAME, "2", "2", "1", "1", "3", "1"],
            ["dora@example.com", "Dora", "1", "1", "0", "0", "1", "0"],
        ]
        for name in ("volume", "rates", "first-open", "links"):
            assert f'id="chart-{name}"' in page.text

        rates = await browser.get(f"/analytics/rates.csv?{PERIOD}")
        assert rates.status_code == 200
        assert rates.headers["content-type"].startswith("text/csv")
        assert "attachment" in rates.headers["content-disposition"]
        assert read_csv(rates.text) == [
            [
                "Day",
                "Delivered",
                "Opened",
                "Open rate (%)",
                "Clicked",
                "Click rate (%)",
                "Replied",
                "Reply rate (%)",
            ],
            ["2026-03-02", "2", "1", "50", "1", "50", "1", "50"],
            ["2026-03-03", "2", "2", "100", "0", "0", "0", "0"],
            ["2026-03-04", "1", "0", "0", "0", "0", "0", "0"],
        ]
        links = await browser.get(f"/analytics/links.csv?{PERIOD}")
        assert f'"{PRICING}",1,1' in links.text  # quoted: the URL holds a comma
        contacts = await browser.get(f"/analytics/contacts.csv?{PERIOD}")
        rows = read_csv(contacts.text)
        # A name starting with "=" is text in a spreadsheet, not a formula.
        assert rows[1] == ["anna@example.com", "'" + ANNA_NAME, "2", "2", "1", "1", "3", "1"]
        assert '"\'=SUM(A1) ""Anna"""' in contacts.text

        weekly = Tables((await browser.get(f"/analytics?{PERIOD}&by=week")).text)
        assert weekly.tables["rates"][1:] == [
            ["Week of Mar 2, 2026", "5", "3", "60.0 %", "1", "20.0 %", "1", "20.0 %"],
        ]
    finally:
        await browser.aclose()


async def test_the_page_speaks_the_users_language(live: LiveApp) -> None:
    await seeded(live)
    engine = make_engine(live.settings.effective_database_url)
    try:
        async with sessions(engine)() as db, db.begin():
            await db.execute(update(User).where(User.id == live.user_id).values(locale="de"))
    finally:
        await engine.dispose()
    browser = await sign_in(live, live.email)
    try:
        page = await browser.get(f"/analytics?{PERIOD}")
        assert "<h1>Auswertungen</h1>" in page.text
        found = Tables(page.text)
        assert found.kpis["open-rate"] == "60,0 %"
        assert found.tables["rates"][0][:3] == ["Tag", "Zugestellt", "Geöffnet"]
        assert found.tables["rates"][1][0] == "2. März 2026"
    finally:
        await browser.aclose()


async def test_another_users_mail_never_appears_on_the_page_or_in_the_csv(
    live: LiveApp,
) -> None:
    other_id = await seeded(live)
    browser = await sign_in(live, live.email)
    try:
        page = await browser.get(f"/analytics?{PERIOD}")
        assert "stranger@example.com" not in page.text
        assert SECRET not in page.text
        for name in ("volume", "rates", "first-open", "links", "contacts"):
            body = (await browser.get(f"/analytics/{name}.csv?{PERIOD}")).text
            assert "stranger" not in body and SECRET not in body
    finally:
        await browser.aclose()
    # The other user sees their one copy and nothing of ours.
    other = await sign_in(live, "other@example.com")
    try:
        found = Tables((await other.get(f"/analytics?{PERIOD}")).text)
        assert found.kpis["sent"] == "1"
        assert found.tables["links"][1:] == [[SECRET, "1", "1"]]
        assert [row[0] for row in found.tables["contacts"][1:]] == ["stranger@example.com"]
    finally:
        await other.aclose()
    assert other_id


async def test_no_mail_in_the_period_shows_the_empty_state(live: LiveApp) -> None:
    browser = await sign_in(live, live.email)
    try:
        page = await browser.get("/analytics")
        assert page.status_code == 200
        assert 'id="analytics-empty"' in page.text
        assert "Nothing sent in this period" in page.text
        assert "<svg" not in page.text.split('id="main"')[1]
        csv_rows = read_csv((await browser.get("/analytics/links.csv?period=7")).text)
        assert csv_rows == [["Link", "Clicks", "Recipients who clicked"]]
    finally:
        await browser.aclose()


async def test_a_wrong_custom_period_says_why_and_shows_the_default(live: LiveApp) -> None:
    browser = await sign_in(live, live.email)
    try:
        backwards = await browser.get("/analytics?period=custom&from=2026-03-05&to=2026-03-01")
        assert backwards.status_code == 200
        assert "The first day of the period is after its last day." in backwards.text
        garbled = await browser.get("/analytics?period=custom&from=yesterday&to=")
        assert "Give both days of a custom period" in garbled.text
        too_long = await browser.get("/analytics?period=custom&from=2020-01-01&to=2026-01-01")
        assert "at most 366 days" in too_long.text
        csv_reply = await browser.get("/analytics/rates.csv?period=custom&from=x&to=y")
        assert csv_reply.status_code == 422
        assert (await browser.get("/analytics/nothing.csv")).status_code == 404
    finally:
        await browser.aclose()


async def test_the_page_needs_a_signed_in_user(live: LiveApp) -> None:
    response = await live.client.get("/analytics", follow_redirects=False)
    assert response.status_code in (303, 307)
    assert "/login" in response.headers["location"]
    response = await live.client.get("/analytics/rates.csv", follow_redirects=False)
    assert response.status_code in (303, 307)


async def test_every_link_and_the_csv_download_work_under_a_path_prefix(
    serve_app: Any, database_url: str
) -> None:
    live = await serve_app(database_url, public_path="/mb")
    await seeded(live)
    async with httpx.AsyncClient(base_url=live.base_url, timeout=15) as client:
        login = await client.get("/mb/login")
        token = LOGIN_CSRF.search(login.text)
        assert token is not None
        signed = await client.post(
            "/mb/login",
            data={
                "email": live.email,
                "password": PASSWORD,
                "login_csrf": token.group(1),
                "next": "/analytics",
            },
        )
        assert signed.headers["location"] == "/mb/analytics"
        page = await client.get(f"/mb/analytics?{PERIOD}")
        assert page.status_code == 200
        links = re.findall(r'(?:href|src|action)="(/[^"]*)"', page.text)
        assert links and all(link.startswith("/mb/") for link in links), links
        assert 'aria-current="page"' in page.text.split('href="/mb/analytics"', 1)[1][:40]
        csv_link = next(link for link in links if "/analytics/rates.csv" in link)
        download = await client.get(html.unescape(csv_link))
        assert download.status_code == 200
        assert read_csv(download.text)[1][:3] == ["2026-03-02", "2", "1"]
