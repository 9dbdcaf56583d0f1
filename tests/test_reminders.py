"""B5 follow-up reminders over real HTTP, a real SMTP server and both databases.

The clock is moved by the test: it calls the worker's `step(now)` with a later
`now` instead of waiting three days (the app's own reminder task keeps running
with the real clock, where nothing is due yet).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update

from mailbeacon.mail.reminders import ReminderWorker
from mailbeacon.store import reminders
from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.tables import Notification, Recipient, Reminder, User
from tests.conftest import LiveApp, SmtpRecorder
from tests.helpers import delivered, eventually
from tests.test_web_notifications import open_copy
from tests.web_helpers import sign_in

ANNA, BOB = "anna@client.example", "bob@client.example"
HTML = '<p>Hello, see <a href="https://example.com/prices">our prices</a>.</p>'
LATER = timedelta(days=3, minutes=1)


async def send(live: LiveApp, reminder: dict[str, Any] | None, **body: Any) -> int:
    payload: dict[str, Any] = {
        "to": [f"Anna Berg <{ANNA}>", BOB],
        "subject": "Prices 2027",
        "html": HTML,
        **body,
    }
    if reminder is not None:
        payload["reminder"] = reminder
    response = await live.client.post("/api/v1/messages", json=payload, headers=live.auth())
    assert response.status_code == 201, response.text
    message_id = int(response.json()["id"])
    await delivered(live.client, message_id, live.auth())
    return message_id


async def query(live: LiveApp, statement: Any) -> Any:
    engine = make_engine(live.settings.effective_database_url)
    try:
        async with sessions(engine)() as db, db.begin():
            return (await db.execute(statement)).all()
    finally:
        await engine.dispose()


async def states(live: LiveApp, message_id: int) -> dict[str, str]:
    rows = await query(
        live,
        select(Recipient.address, Reminder.state)
        .join(Reminder, Reminder.recipient_id == Recipient.id)
        .where(Reminder.message_id == message_id),
    )
    return {address: state for address, state in rows}


async def reminder_notifications(live: LiveApp) -> int:
    [(count,)] = await query(
        live, select(func.count(Notification.id)).where(Notification.kind == "reminder")
    )
    return int(count)


async def opened(live: LiveApp, message_id: int, address: str) -> bool:
    response = await live.client.get(f"/api/v1/messages/{message_id}", headers=live.auth())
    for recipient in response.json()["recipients"]:
        if recipient["address"] == address:
            return bool(recipient["opens"]["count"])
    raise AssertionError(address)


def worker(live: LiveApp) -> ReminderWorker:
    runtime = live.runtime
    return ReminderWorker(runtime.engine, runtime.smtp_target_for_user, runtime._reminder_wording)


async def test_reminder_fires_for_the_unopened_copy_and_not_for_the_opened_one(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    message_id = await send(live, {"condition": "not_opened", "days": 3})
    await open_copy(smtp_server, BOB)
    await eventually(lambda: opened(live, message_id, BOB))
    sent_at = datetime.now(UTC)

    early = await worker(live).step(sent_at + timedelta(days=2))
    assert early.fired == []
    assert await states(live, message_id) == {ANNA: "pending", BOB: "met"}

    result = await worker(live).step(sent_at + LATER)
    assert len(result.fired) == 1
    assert await states(live, message_id) == {ANNA: "fired", BOB: "met"}

    browser = await sign_in(live, live.email)
    feed = (await browser.get("/notifications")).text
    assert "No open from Anna Berg after 3 days: Prices 2027" in feed
    assert f"No open from {BOB}" not in feed
    assert await reminder_notifications(live) == 1
    await browser.aclose()


async def test_a_reply_stops_the_reminder_before_it_is_due(live: LiveApp) -> None:
    message_id = await send(live, {"condition": "not_replied", "days": 2})
    # What the inbox watch records for a reply (B11): the copy's replied_at.
    await query(
        live,
        update(Recipient)
        .where(Recipient.message_id == message_id, Recipient.address == ANNA)
        .values(replied_at=datetime.now(UTC), reply_count=1)
        .returning(Recipient.id),
    )
    result = await worker(live).step(datetime.now(UTC) + timedelta(hours=1))
    assert result.met == 1 and result.fired == []
    assert await states(live, message_id) == {ANNA: "met", BOB: "pending"}
    result = await worker(live).step(datetime.now(UTC) + LATER)
    assert len(result.fired) == 1
    assert await states(live, message_id) == {ANNA: "met", BOB: "fired"}


async def test_a_restarted_or_second_worker_never_fires_twice(live: LiveApp) -> None:
    message_id = await send(live, {"condition": "not_clicked", "days": 1}, to=[ANNA])
    later = datetime.now(UTC) + LATER
    # Two workers at once (two processes, or one restarted mid-step), then a third later.
    first, second = await asyncio.gather(worker(live).step(later), worker(live).step(later))
    assert len(first.fired) + len(second.fired) == 1
    again = await worker(live).step(later + timedelta(days=10))
    assert again.fired == []
    assert await reminder_notifications(live) == 1
    assert await states(live, message_id) == {ANNA: "fired"}


async def test_email_me_sends_one_email_to_the_user_in_their_language(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    await query(
        live,
        update(User).where(User.id == live.user_id).values(locale="de").returning(User.id),
    )
    message_id = await send(
        live, {"condition": "not_opened", "days": 3, "email_me": True}, to=[f"Anna Berg <{ANNA}>"]
    )
    later = datetime.now(UTC) + LATER
    result = await worker(live).step(later)
    assert result.emailed == 1
    await worker(live).step(later + timedelta(days=1))
    mails = [m for m in smtp_server.mails if m.envelope_to == [live.email]]
    assert len(mails) == 1
    message = mails[0].message
    assert message["Subject"] == "Erinnerung: Kein Öffnen von Anna Berg nach 3 Tagen: Prices 2027"
    assert message["Auto-Submitted"] == "auto-generated"
    assert f"/mail/{message_id}" in message.get_content()
    [(status,)] = await query(
        live, select(Reminder.email_status).where(Reminder.message_id == message_id)
    )
    assert status == "sent"


async def test_no_reminder_waits_for_opens_that_are_not_tracked(live: LiveApp) -> None:
    message_id = await send(
        live, {"condition": "not_opened", "days": 3}, track_opens=False, track_links=False
    )
    assert await states(live, message_id) == {}


async def test_the_api_refuses_an_odd_reminder_and_sends_nothing(live: LiveApp) -> None:
    for reminder in (
        {"condition": "not_opened", "days": 0},
        {"condition": "not_opened", "days": 61},
        {"condition": "whenever", "days": 3},
    ):
        response = await live.client.post(
            "/api/v1/messages",
            json={"to": [ANNA], "html": HTML, "reminder": reminder},
            headers=live.auth(),
        )
        assert response.status_code == 422, response.text
    listing = await live.client.get("/api/v1/messages", headers=live.auth())
    assert listing.json()["total"] == 0


async def test_the_composer_keeps_a_reminder_per_recipient(live: LiveApp) -> None:
    browser = await sign_in(live, live.email)
    page = (await browser.get("/mail/new")).text
    assert 'name="reminder" value="1" id="reminder-on">' in page  # off by default
    form = {
        "to": f"Anna Berg <{ANNA}>, {BOB}",
        "subject": "Prices 2027",
        "format": "html",
        "body": HTML,
        "track_opens": "1",
        "track_links": "1",
        "reminder": "1",
        "reminder_condition": "not_clicked",
        "reminder_days": "5",
    }
    refused = await browser.post("/mail/new", {**form, "reminder_days": "0"})
    assert refused.status_code == 422
    assert "Enter a whole number of days from 1 to 60." in refused.text
    assert 'value="Prices 2027"' in refused.text  # the draft is kept
    sent = await browser.post("/mail/new", form)
    assert sent.status_code == 303, sent.text
    message_id = int(sent.headers["location"].split("/")[2].split("?")[0])
    rows = await query(
        live, select(Reminder.condition, Reminder.days).where(Reminder.message_id == message_id)
    )
    assert sorted(rows) == [("not_clicked", 5), ("not_clicked", 5)]
    await browser.aclose()


async def test_the_settings_default_turns_the_composer_reminder_on(live: LiveApp) -> None:
    browser = await sign_in(live, live.email)
    settings = (await browser.get("/settings")).text
    assert "Follow-up reminders" in settings
    saved = await browser.post(
        "/settings",
        {
            "display_name": "",
            "language": "en",
            "timezone": "Europe/Stockholm",
            "open_tracking": "1",
            "link_tracking": "1",
            "notify_tracking": "1",
            "reopen_quiet_hours": "3",
            "reminder": "1",
            "reminder_condition": "not_replied",
            "reminder_days": "4",
            "reminder_email": "1",
        },
    )
    assert saved.status_code == 303, saved.text
    page = (await browser.get("/mail/new")).text
    assert 'name="reminder" value="1" id="reminder-on" checked>' in page
    assert '<option value="not_replied" selected>' in page
    assert 'value="4"' in page
    refused = await browser.post(
        "/settings",
        {
            "language": "en",
            "timezone": "UTC",
            "reopen_quiet_hours": "3",
            "reminder": "1",
            "reminder_condition": "not_opened",
            "reminder_days": "99",
        },
    )
    assert refused.status_code == 400
    assert "Enter a whole number of days from 1 to 60." in refused.text
    await browser.aclose()


async def test_an_open_between_reading_and_firing_keeps_the_reminder_from_firing(
    live: LiveApp,
) -> None:
    message_id = await send(live, {"condition": "not_opened", "days": 1}, to=[ANNA])
    later = datetime.now(UTC) + LATER
    [pending] = await reminders.due(live.runtime.engine, later)
    # The processor counts Anna's open after the worker read the reminder as due.
    await query(
        live,
        update(Recipient)
        .where(Recipient.message_id == message_id)
        .values(open_count=1)
        .returning(Recipient.id),
    )
    assert await reminders.fire(live.runtime.engine, pending.id, pending.condition, later) is None
    assert await states(live, message_id) == {ANNA: "pending"}
    assert await reminders.close_met(live.runtime.engine, later) == 1
    assert await states(live, message_id) == {ANNA: "met"}
    assert await reminder_notifications(live) == 0
