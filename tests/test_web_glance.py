"""At a glance (S8, B5, issue #9): the mail and contacts lists say in words who opened,
which link was clicked and who replied, sort by last activity (surviving paging,
the tracked filter and search), and the bell's accessible name carries the unread
count; every page has a favicon.

Counts and events are written straight into the database (as in test_web_signals):
these tests prove what the pages show for them, on SQLite and PostgreSQL, over real HTTP.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from mailbeacon.store import queries
from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.tables import Event, Link, Message, Notification, Recipient, Reply, User
from mailbeacon.web.pages.mail.glance import short_link
from tests.conftest import LiveApp, SmtpRecorder
from tests.helpers import delivered
from tests.web_helpers import sign_in

ROW = re.compile(r'<tr data-message-id="(\d+)">')
HTML = '<p>See <a href="https://www.example.com/pricing?utm=x">pricing</a>.</p>'


async def send(live: LiveApp, subject: str, *, to: str, tracked: bool = True) -> int:
    response = await live.client.post(
        "/api/v1/messages",
        json={
            "to": [to],
            "subject": subject,
            "html": HTML,
            "track_opens": tracked,
            "track_links": tracked,
        },
        headers=live.auth(),
    )
    assert response.status_code == 201, response.text
    message_id = int(response.json()["id"])
    await delivered(live.client, message_id, live.auth())
    return message_id


async def write(live: LiveApp, work: Any) -> Any:
    engine = make_engine(live.settings.effective_database_url)
    try:
        async with sessions(engine)() as db, db.begin():
            return await work(db)
    finally:
        await engine.dispose()


async def activity(
    live: LiveApp,
    message_id: int,
    *,
    now: datetime,
    opens: int = 0,
    opened_ago: timedelta | None = None,
    click_ago: timedelta | None = None,
    reply_ago: timedelta | None = None,
    sent_ago: timedelta = timedelta(days=1),
) -> None:
    """Counted opens, a click on the pricing link and a reply, as the processor and the
    inbox watch would leave them; `*_ago` is how long before `now` each happened."""
    seq = 20_000_000 + message_id * 10

    async def work(db: Any) -> None:
        recipient = (
            await db.scalars(select(Recipient).where(Recipient.message_id == message_id))
        ).one()
        link = (await db.scalars(select(Link).where(Link.message_id == message_id))).first()
        message: dict[str, Any] = {"created_at": now - sent_ago}
        copy: dict[str, Any] = {}
        base = {
            "message_id": message_id,
            "recipient_id": recipient.id,
            "verdict": "human",
            "reason": "mail_client",
            "counted": True,
            "ip": "192.0.2.0",
            "user_agent": "Thunderbird",
        }
        if opened_ago is not None:
            at = now - opened_ago
            message |= {"open_count": opens, "last_open_at": at, "first_open_at": at}
            copy |= {"open_count": opens, "person_open_count": opens, "last_open_at": at}
            db.add(Event(hit_seq=seq, kind="open", occurred_at=at, **base))
        if click_ago is not None:
            at = now - click_ago
            message |= {"click_count": 1, "last_click_at": at, "first_click_at": at}
            copy |= {"click_count": 1, "last_click_at": at}
            db.add(Event(hit_seq=seq + 1, kind="click", link_id=link.id, occurred_at=at, **base))
        if reply_ago is not None:
            at = now - reply_ago
            message |= {"reply_count": 1, "last_reply_at": at}
            copy |= {"reply_count": 1, "replied_at": at}
            db.add(
                Reply(
                    user_id=live.user_id,
                    message_id=message_id,
                    recipient_id=recipient.id,
                    kind="reply",
                    from_address=recipient.address,
                    from_name=recipient.name,
                    received_at=at,
                    source_key=f"<reply-{message_id}@example.com>",
                )
            )
        await db.execute(update(Message).where(Message.id == message_id).values(**message))
        if copy:
            await db.execute(update(Recipient).where(Recipient.id == recipient.id).values(**copy))

    await write(live, work)


def row_of(page: str, message_id: int) -> str:
    start = page.index(f'<tr data-message-id="{message_id}">')
    return page[start : page.index("</tr>", start)]


def test_short_link_names_a_link_by_host_and_path() -> None:
    assert short_link("https://www.example.com/pricing?utm=x") == "example.com/pricing"
    assert short_link("https://example.com/") == "example.com"
    assert short_link("https://example.com/" + "a" * 100).endswith("…")
    assert len(short_link("https://example.com/" + "a" * 100)) == 40
    assert short_link(None) == ""


async def test_mail_list_says_who_opened_when_which_link_and_who_replied(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    now = datetime.now(UTC)
    hot = await send(live, "Offer", to="Anna Berg <anna@example.com>")
    quiet = await send(live, "Quiet", to="ben@example.com")
    plain = await send(live, "Untracked", to="cleo@example.com", tracked=False)
    await activity(
        live,
        hot,
        now=now,
        opens=3,
        opened_ago=timedelta(minutes=5),
        click_ago=timedelta(minutes=4),
        reply_ago=timedelta(minutes=3),
    )
    browser = await sign_in(live, live.email)
    try:
        page = (await browser.get("/mail")).text
        await write(
            live,
            lambda db: db.execute(update(User).where(User.id == live.user_id).values(locale="de")),
        )
        german = (await browser.get("/mail")).text
    finally:
        await browser.aclose()
    row = row_of(page, hot)
    assert "Opened 3× · last 5 minutes ago · Anna Berg" in row
    assert "Clicked example.com/pricing" in row
    assert "Replied · Anna Berg" in row
    assert "3 minutes ago" in row  # the Last activity column: the reply, the newest
    assert "No activity yet" in row_of(page, quiet)
    assert "Not tracked" in row_of(page, plain)
    german_row = row_of(german, hot)
    assert "3× geöffnet · zuletzt vor 5 Minuten · Anna Berg" in german_row
    assert "Geklickt: example.com/pricing" in german_row
    assert "Beantwortet · Anna Berg" in german_row


async def test_last_activity_sort_puts_the_hottest_mail_first_and_survives_filters_and_paging(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    now = datetime.now(UTC)
    opened = await send(live, "Opened long ago", to="anna@example.com")
    newest = await send(live, "Sent last, nothing yet", to="ben@example.com")
    replied = await send(live, "Replied", to="cleo@example.com")
    clicked = await send(live, "Clicked", to="dave@example.com")
    untracked = await send(live, "Untracked", to="eve@example.com", tracked=False)
    await activity(
        live, opened, now=now, opens=1, opened_ago=timedelta(hours=5), sent_ago=timedelta(days=3)
    )
    await activity(live, newest, now=now, sent_ago=timedelta(minutes=1))
    await activity(
        live, replied, now=now, reply_ago=timedelta(minutes=2), sent_ago=timedelta(days=2)
    )
    await activity(
        live, clicked, now=now, click_ago=timedelta(hours=1), sent_ago=timedelta(days=2, hours=1)
    )
    await activity(live, untracked, now=now, sent_ago=timedelta(hours=2))
    browser = await sign_in(live, live.email)
    try:
        by_sent = (await browser.get("/mail")).text
        by_activity = (await browser.get("/mail?sort=activity")).text
        tracked_only = (await browser.get("/mail?sort=activity&tracked=1")).text
        odd = await browser.get("/mail?sort=nonsense")
        searched = (await browser.get("/mail?sort=activity&q=e")).text
    finally:
        await browser.aclose()
    assert [int(i) for i in ROW.findall(by_sent)] == [newest, untracked, replied, clicked, opened]
    assert [int(i) for i in ROW.findall(by_activity)] == [
        replied,
        clicked,
        opened,
        newest,  # no activity: newest sent first
        untracked,
    ]
    assert [int(i) for i in ROW.findall(tracked_only)] == [replied, clicked, opened, newest]
    assert 'aria-sort="descending"' in by_activity
    # The filters keep the sort, and the sort keeps the filters.
    assert 'href="/mail?sort=activity"' in by_activity  # "Tracked emails" chip off again
    assert 'href="/mail?tracked=1&amp;sort=activity"' in by_activity
    assert '<input type="hidden" name="sort" value="activity">' in by_activity
    assert 'href="/mail?tracked=1"' in tracked_only  # back to "Sent", still tracked only
    assert odd.status_code == 200  # an odd sort is the default, never an error page
    assert ROW.findall(odd.text) == ROW.findall(by_sent)
    assert [int(i) for i in ROW.findall(searched)][:2] == [replied, clicked]

    async def pages(db: Any) -> list[list[int]]:
        found = []
        for number in (1, 2):
            result = await queries.mail_page(
                db, live.user_id, page=number, tracked=True, sort="activity", per_page=2
            )
            found.append([row.message.id for row in result.rows])
        return found

    assert await write(live, pages) == [[replied, clicked], [opened, newest]]


async def test_contacts_list_says_it_in_words_and_sorts_by_last_activity(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    now = datetime.now(UTC)
    anna = await send(live, "To Anna", to="Anna Berg <anna@example.com>")
    ben = await send(live, "To Ben", to="ben@example.com")
    await activity(
        live,
        anna,
        now=now,
        opens=2,
        opened_ago=timedelta(minutes=10),
        click_ago=timedelta(minutes=9),
        sent_ago=timedelta(days=2),
    )
    await activity(live, ben, now=now, sent_ago=timedelta(hours=1))
    browser = await sign_in(live, live.email)
    try:
        by_sent = (await browser.get("/contacts")).text
        by_activity = (await browser.get("/contacts?sort=activity")).text
    finally:
        await browser.aclose()
    assert by_sent.index("ben@example.com") < by_sent.index("anna@example.com")
    assert by_activity.index("anna@example.com") < by_activity.index("ben@example.com")
    anna_row = by_activity[by_activity.index("anna@example.com") :].split("</tr>", 1)[0]
    assert "Opened 2× · last 10 minutes ago" in anna_row
    assert "Clicked example.com/pricing" in anna_row
    assert "9 minutes ago" in anna_row
    assert "No activity yet" in by_activity.split("ben@example.com", 1)[1].split("</tr>", 1)[0]


async def test_the_bell_names_its_unread_count_and_every_page_has_a_favicon(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    message_id = await send(live, "Hello", to="anna@example.com")

    async def notify(db: Any) -> None:
        recipient = (
            await db.scalars(select(Recipient).where(Recipient.message_id == message_id))
        ).one()
        for n in range(3):
            db.add(
                Notification(
                    user_id=live.user_id,
                    hit_seq=30_000_000 + message_id * 10 + n,
                    message_id=message_id,
                    recipient_id=recipient.id,
                    kind="open",
                    occurred_at=datetime.now(UTC),
                )
            )

    await write(live, notify)
    browser = await sign_in(live, live.email)
    try:
        page = (await browser.get("/mail")).text
        favicon = await browser.get("/static/favicon.svg")
        root_icon = await live.client.get("/favicon.ico")  # signed out too
        login = (await live.client.get("/login")).text
    finally:
        await browser.aclose()
    assert 'aria-label="Notifications, 3 unread"' in page
    assert 'data-label-some="Notifications, {n} unread"' in page
    assert '<link rel="icon" href="/static/favicon.svg"' in page
    assert '<link rel="icon" href="/static/favicon.svg"' in login
    assert favicon.status_code == 200 and favicon.headers["content-type"].startswith("image/svg")
    assert root_icon.status_code == 200 and root_icon.content == favicon.content
