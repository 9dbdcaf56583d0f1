"""The inbox watch (B11) against a real Dovecot: a reply turns its recipient "replied",
counts an open and notifies; an out-of-office is labelled and not counted; a DSN marks
its recipient bounced; a reply from someone else is kept as such; a restart (and a
renumbered inbox) neither loses nor repeats anything. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from mailbeacon.core.replies import analyse
from mailbeacon.mail.imap import ImapTarget
from mailbeacon.mail.inbox import InboxAccount, InboxWatcher
from mailbeacon.processor.derive import rebuild
from mailbeacon.store import replies, sendqueue
from mailbeacon.store.accounts import add_user
from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.tables import Mailbox, Notification, Recipient, Reply
from tests.dovecot import MAIL_PASSWORD, MAIL_USER, DovecotServer
from tests.helpers import eventually

OURS = "<offer.1@sales.example>"
SENDER = MAIL_USER


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url)
    yield engine
    await engine.dispose()


async def seller(engine: AsyncEngine, email: str = SENDER) -> int:
    async with sessions(engine)() as db, db.begin():
        user = await add_user(db, email, "a long password")
        db.add(Mailbox(user_id=user.id, host="127.0.0.1", port=25, security="none"))
        return user.id


async def sent_message(
    engine: AsyncEngine, user_id: int, addresses: Sequence[str], message_id: str = OURS
) -> int:
    """A message as the send queue stores it, every copy delivered."""
    found = await sendqueue.enqueue(
        engine,
        sendqueue.NewMessage(
            user_id=user_id,
            message_id_header=message_id,
            from_address=f"Sam <{SENDER}>",
            subject="Our offer",
            html="<p>Hello</p>",
            text=None,
            requested_opens=True,
            requested_links=True,
            track_opens=True,
            track_links=True,
            untracked_reasons=[],
            recipients=tuple(("to", a, "") for a in addresses),
            links=(),
        ),
        datetime.now(UTC),
    )
    async with sessions(engine)() as db, db.begin():
        await db.execute(
            update(Recipient).where(Recipient.message_id == found).values(status="sent")
        )
    return found


def raw(headers: str, body: str = "Sounds good, let us talk.\r\n") -> bytes:
    return (headers.strip().replace("\n", "\r\n") + "\r\n\r\n" + body).encode()


def reply_from(address: str, n: int = 1, extra: str = "", subject: str = "Re: Our offer") -> bytes:
    return raw(
        f"""
From: {address}
To: {SENDER}
Subject: {subject}
Date: {datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")}
Message-ID: <reply.{n}.{address}>
In-Reply-To: {OURS}
References: {OURS}
{extra}
"""
    )


def dsn_for(address: str) -> bytes:
    return raw(
        f"""
From: MAILER-DAEMON@mx.example (Mail Delivery System)
To: {SENDER}
Subject: Undelivered Mail Returned to Sender
Message-ID: <dsn.1@mx.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"
""",
        "--B\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
        f"Final-Recipient: rfc822; {address}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n"
        f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {OURS}\r\nSubject: x\r\n"
        "\r\n--B--\r\n",
    )


def watcher(
    engine: AsyncEngine, server: DovecotServer, user_id: int, **options: Any
) -> InboxWatcher:
    target = ImapTarget(
        server.host,
        server.port,
        "none",
        MAIL_USER,
        MAIL_PASSWORD,
        allow_private=True,
        timeout=10,
    )

    async def accounts() -> list[InboxAccount]:
        return [InboxAccount(user_id, target)]

    return InboxWatcher(engine, accounts, rescan_seconds=0.2, **options)


class Running:
    """A watcher running as the worker runs it, stopped cleanly."""

    def __init__(self, watch: InboxWatcher) -> None:
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(watch.run_forever(self.stop))

    async def close(self) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 30)


async def recipient(engine: AsyncEngine, message_id: int, address: str) -> Recipient:
    async with sessions(engine)() as db:
        found = await db.scalar(
            select(Recipient).where(
                Recipient.message_id == message_id, Recipient.address == address
            )
        )
        assert found is not None
        return found


async def count(engine: AsyncEngine, model: Any, *where: Any) -> int:
    async with sessions(engine)() as db:
        return int(await db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def test_reply_auto_reply_bounce_and_stranger_then_restart_and_renumbered_inbox(
    engine: AsyncEngine, dovecot: DovecotServer
) -> None:
    user_id = await seller(engine)
    message_id = await sent_message(
        engine, user_id, ["anna@client.example", "bob@client.example", "carl@gone.example"]
    )
    running = Running(watcher(engine, dovecot, user_id))
    try:
        # A reply from Anna: replied, counted as her open, notified, within seconds.
        dovecot.append(MAIL_USER, "INBOX", reply_from("Anna <anna@client.example>"))

        async def anna_replied() -> Recipient | None:
            found = await recipient(engine, message_id, "anna@client.example")
            return found if found.replied_at is not None else None

        anna = await eventually(anna_replied, timeout=15)
        assert (anna.reply_count, anna.open_count, anna.inferred_open_count) == (1, 1, 1)
        assert await count(engine, Notification, Notification.kind == "reply") == 1

        # Bob's out-of-office: labelled, not a reply, not an open, no notification.
        dovecot.append(
            MAIL_USER,
            "INBOX",
            reply_from("bob@client.example", subject="Automatic reply: Our offer"),
        )

        async def bob_away() -> Recipient | None:
            found = await recipient(engine, message_id, "bob@client.example")
            return found if found.auto_replied_at is not None else None

        bob = await eventually(bob_away, timeout=15)
        assert (bob.replied_at, bob.reply_count, bob.open_count) == (None, 0, 0)

        # Carl's address bounced: status code and words, and a notification.
        dovecot.append(MAIL_USER, "INBOX", dsn_for("carl@gone.example"))

        async def carl_bounced() -> Recipient | None:
            found = await recipient(engine, message_id, "carl@gone.example")
            return found if found.bounced_at is not None else None

        carl = await eventually(carl_bounced, timeout=15)
        assert carl.bounce_status == "5.1.1"
        assert "User unknown" in carl.bounce_detail
        assert replies.delivery_status(carl) == "bounced"
        assert carl.status == "sent"  # the send queue's own status is left alone

        # Dave was not a recipient: kept as a reply from someone else.
        dovecot.append(MAIL_USER, "INBOX", reply_from("dave@client.example"))

        async def dave_kept() -> int:
            return await count(engine, Reply, Reply.from_address == "dave@client.example")

        await eventually(dave_kept, timeout=15)
        async with sessions(engine)() as db:
            dave = await db.scalar(select(Reply).where(Reply.from_address == "dave@client.example"))
            assert dave is not None and dave.recipient_id is None
    finally:
        await running.close()

    assert await count(engine, Notification) == 3  # Anna, Carl, Dave; not Bob
    rows = await count(engine, Reply)
    assert rows == 4

    # Stopped: a second reply from Anna arrives meanwhile; the next worker finds it once.
    dovecot.append(MAIL_USER, "INBOX", reply_from("anna@client.example", n=2))
    running = Running(watcher(engine, dovecot, user_id))
    try:

        async def second() -> bool:
            found = await recipient(engine, message_id, "anna@client.example")
            return found.reply_count == 2

        await eventually(second, timeout=15)
    finally:
        await running.close()
    assert await count(engine, Reply) == rows + 1

    # The inbox renumbered (a new UIDVALIDITY): read again from the start, nothing twice.
    async with sessions(engine)() as db, db.begin():
        await db.execute(
            update(Mailbox).where(Mailbox.user_id == user_id).values(inbox_uidvalidity=1)
        )
    running = Running(watcher(engine, dovecot, user_id, use_idle=False, poll_seconds=0.3))
    try:

        async def resynced() -> bool:
            async with sessions(engine)() as db:
                box = await db.get(Mailbox, user_id)
                return box is not None and box.inbox_uidvalidity != 1
            return False

        await eventually(resynced, timeout=15)
        # Polling (no IDLE) still sees new mail.
        dovecot.append(MAIL_USER, "INBOX", reply_from("bob@client.example", n=3))

        async def bob_replied() -> bool:
            return (await recipient(engine, message_id, "bob@client.example")).reply_count == 1

        await eventually(bob_replied, timeout=15)
    finally:
        await running.close()
    assert await count(engine, Reply) == rows + 2
    anna = await recipient(engine, message_id, "anna@client.example")
    assert (anna.reply_count, anna.open_count) == (2, 1)
    assert await count(engine, Notification) == 5


async def test_a_reply_to_another_users_message_is_not_theirs(engine: AsyncEngine) -> None:
    owner = await seller(engine)
    other = await seller(engine, "other@example.com")
    message_id = await sent_message(engine, owner, ["anna@client.example"])
    found = analyse(reply_from("anna@client.example"))
    async with sessions(engine)() as db, db.begin():
        assert await replies.record(db, other, found, "<k>", datetime.now(UTC)) == []
    assert (await recipient(engine, message_id, "anna@client.example")).replied_at is None


async def test_a_wrong_password_is_kept_on_the_mailbox_in_words(
    engine: AsyncEngine, dovecot: DovecotServer
) -> None:
    user_id = await seller(engine)
    target = ImapTarget(
        dovecot.host, dovecot.port, "none", MAIL_USER, "wrong", allow_private=True, timeout=10
    )

    async def accounts() -> list[InboxAccount]:
        return [InboxAccount(user_id, target)]

    running = Running(InboxWatcher(engine, accounts, rescan_seconds=0.2))
    try:

        async def noted() -> str:
            async with sessions(engine)() as db:
                box = await db.get(Mailbox, user_id)
                return box.inbox_error if box else ""

        assert "user name and password" in await eventually(noted, timeout=20)
    finally:
        await running.close()


async def test_a_rebuild_from_hits_keeps_the_open_a_reply_counted(engine: AsyncEngine) -> None:
    user_id = await seller(engine)
    message_id = await sent_message(engine, user_id, ["anna@client.example"])
    async with sessions(engine)() as db, db.begin():
        found = analyse(reply_from("anna@client.example"))
        assert await replies.record(db, user_id, found, "<r>", datetime.now(UTC))
    assert (await recipient(engine, message_id, "anna@client.example")).open_count == 1
    await rebuild(engine)  # knows only hits: the open is gone ...
    assert (await recipient(engine, message_id, "anna@client.example")).open_count == 0
    async with sessions(engine)() as db, db.begin():
        assert await replies.reapply_reply_opens(db) == 1  # ... and comes back
        assert await replies.reapply_reply_opens(db) == 0  # once
    anna = await recipient(engine, message_id, "anna@client.example")
    assert (anna.open_count, anna.first_open_at) == (1, anna.replied_at)
