"""B11 end to end: the app's own worker watches the inbox (Dovecot); a reply, an
out-of-office and a bounce show in the API, on the message, list and contact pages and
in the bell, in the user's language. SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.mailboxes import save_imap, save_mailbox
from mailbeacon.store.tables import Message, User
from tests.conftest import LiveApp, SmtpRecorder
from tests.dovecot import MAIL_PASSWORD, MAIL_USER, DovecotServer
from tests.helpers import delivered, eventually
from tests.test_inbox_replies import dsn_for, raw
from tests.web_helpers import sign_in

ANNA, BOB, CARL = "anna@client.example", "bob@client.example", "carl@gone.example"


async def set_up_imap(live: LiveApp, smtp: SmtpRecorder, imap: DovecotServer) -> None:
    engine = make_engine(live.settings.effective_database_url)
    try:
        async with sessions(engine)() as db, db.begin():
            fernet = live.settings.fernet()
            await save_mailbox(
                db,
                fernet,
                live.user_id,
                host=smtp.host,
                port=smtp.port,
                security="none",
                username="",
                password="",
            )
            await save_imap(
                db,
                fernet,
                live.user_id,
                host=imap.host,
                port=imap.port,
                security="none",
                username=MAIL_USER,
                password=MAIL_PASSWORD,
            )
    finally:
        await engine.dispose()
    live.runtime.inbox.wake()


async def send(live: LiveApp) -> tuple[int, str]:
    response = await live.client.post(
        "/api/v1/messages",
        json={
            "to": [f"Anna <{ANNA}>", BOB],
            "cc": [CARL],
            "subject": "Our offer",
            "html": "<p>Hi</p>",
        },
        headers=live.auth(),
    )
    assert response.status_code == 201, response.text
    message_id = int(response.json()["id"])
    await delivered(live.client, message_id, live.auth())
    engine = make_engine(live.settings.effective_database_url)
    try:
        async with sessions(engine)() as db:
            header = await db.scalar(
                select(Message.message_id_header).where(Message.id == message_id)
            )
    finally:
        await engine.dispose()
    assert header
    return message_id, header


def answer(sender: str, ours: str, n: int, subject: str = "Re: Our offer") -> bytes:
    return raw(
        f"From: {sender}\nTo: {MAIL_USER}\nSubject: {subject}\n"
        f"Message-ID: <answer.{n}@client.example>\nIn-Reply-To: {ours}\nReferences: {ours}"
    )


async def test_reply_auto_reply_and_bounce_show_in_api_pages_and_bell(
    live: LiveApp, smtp_server: SmtpRecorder, dovecot: DovecotServer
) -> None:
    await set_up_imap(live, smtp_server, dovecot)
    message_id, ours = await send(live)
    dovecot.append(MAIL_USER, "INBOX", answer(f"Anna <{ANNA}>", ours, 1))
    dovecot.append(MAIL_USER, "INBOX", answer(BOB, ours, 2, "Automatische Antwort: Our offer"))
    dovecot.append(
        MAIL_USER, "INBOX", dsn_for(CARL).replace(b"<offer.1@sales.example>", ours.encode())
    )
    dovecot.append(MAIL_USER, "INBOX", answer("dave@client.example", ours, 3))

    async def settled() -> dict[str, Any] | None:
        response = await live.client.get(f"/api/v1/messages/{message_id}", headers=live.auth())
        detail: dict[str, Any] = response.json()
        # The log and the recipients are read by two statements: on PostgreSQL a
        # reply may commit between them, so wait until both show all four.
        recorded = sum(r["replies"]["count"] for r in detail["recipients"])
        bounced = sum(r["status"] == "bounced" for r in detail["recipients"])
        done = len(detail["reply_log"]) == 4 and recorded == 1 and bounced == 1
        return detail if done else None

    detail = await eventually(settled, timeout=30)
    by_address = {r["address"]: r for r in detail["recipients"]}
    anna, bob, carl = by_address[ANNA], by_address[BOB], by_address[CARL]
    assert anna["replies"]["count"] == 1 and anna["replies"]["first_at"]
    assert anna["opens"]["count"] == 1  # the reply counts as her open
    assert bob["replies"]["count"] == 0 and bob["auto_replied_at"] and bob["opens"]["count"] == 0
    assert carl["status"] == "bounced"
    assert carl["bounce"]["status_code"] == "5.1.1" and "User unknown" in carl["bounce"]["detail"]
    assert detail["replies"]["count"] == 2  # Anna and Dave; not Bob's auto-reply
    assert detail["bounces"] == 1
    stranger = [r for r in detail["reply_log"] if r["from_address"] == "dave@client.example"]
    assert stranger[0]["recipient_id"] is None

    engine = make_engine(live.settings.effective_database_url)
    try:
        async with sessions(engine)() as db, db.begin():
            await db.execute(update(User).where(User.id == live.user_id).values(locale="de"))
    finally:
        await engine.dispose()
    browser = await sign_in(live, live.email)
    page = (await browser.get(f"/mail/{message_id}")).text
    assert f'id="icon-m{message_id}-reply"' in page
    assert "track-reply solid" in page
    assert "Unzustellbar" in page and "5.1.1" in page  # Carl's bounce, in German
    assert "Automatische Antwort" in page  # Bob's, labelled
    assert "kein Empfänger" in page  # Dave
    listing = (await browser.get("/mail")).text
    assert "track-reply solid" in listing and "1 unzustellbar" in listing
    contact = (await browser.get(f"/contacts/{BOB}")).text
    assert "track-reply auto" in contact
    feed = (await browser.get("/notifications")).text
    assert "hat auf" in feed and "geantwortet" in feed  # Anna's reply
    assert "kein Empfänger" in feed  # Dave's
    assert "unzustellbar" in feed  # Carl's bounce
    assert feed.count("Bob") == 0 and BOB not in feed  # the out-of-office does not notify


async def test_without_imap_the_reply_icon_says_replies_are_not_watched(live: LiveApp) -> None:
    response = await live.client.post(
        "/api/v1/messages",
        json={"to": [ANNA], "subject": "Hello", "html": "<p>Hi</p>"},
        headers=live.auth(),
    )
    message_id = response.json()["id"]
    browser = await sign_in(live, live.email)
    page = (await browser.get(f"/mail/{message_id}")).text
    assert "track-reply untracked" in page
    assert "Set up IMAP in Settings" in page


async def test_settings_say_how_the_inbox_watch_is_doing(
    live: LiveApp, smtp_server: SmtpRecorder, dovecot: DovecotServer
) -> None:
    await set_up_imap(live, smtp_server, dovecot)
    browser = await sign_in(live, live.email)

    async def watched() -> bool:
        page = (await browser.get("/settings/mailbox")).text
        return "Replies and bounces are watched in your inbox" in page

    await eventually(watched, timeout=20)
    engine = make_engine(live.settings.effective_database_url)
    try:
        async with sessions(engine)() as db, db.begin():
            await save_imap(
                db,
                live.settings.fernet(),
                live.user_id,
                host=dovecot.host,
                port=dovecot.port,
                security="none",
                username=MAIL_USER,
                password="wrong",
            )
    finally:
        await engine.dispose()
    live.runtime.inbox.wake()

    async def failing() -> str | None:
        page = (await browser.get("/settings/mailbox")).text
        return page if "Replies cannot be watched right now." in page else None

    page = await eventually(failing, timeout=20)
    assert "did not accept the user name and password" in page
