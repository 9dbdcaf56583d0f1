"""The send queue (DESIGN rule 1): queued at once, delivered by the worker one copy at a time,
retried when the failure is transient, recorded per recipient when it is not, never sent
twice across a restart, and the pixel keeps answering fast during the largest send.

Runs on SQLite and PostgreSQL, against real SMTP servers (aiosmtpd).
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from mailbeacon.core.compose import MAX_LINKS, MAX_RECIPIENTS
from mailbeacon.core.tokens import KeyRing
from mailbeacon.mail.outbox import Outbox, header_block, subject_of
from mailbeacon.mail.smtp import SmtpTarget
from mailbeacon.mail.worker import SendWorker
from mailbeacon.store import sendqueue
from mailbeacon.store.accounts import add_user
from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.tables import Message, OutboxMail, Recipient, SendJob, User
from tests.conftest import TEST_SECRET, LiveApp, SmtpRecorder
from tests.helpers import delivered, eventually
from tests.web_helpers import sign_in

HTML = '<p>Hello, see <a href="https://example.com/pricing">our prices</a>.</p>'
KEYS = KeyRing.from_secrets([TEST_SECRET])


# --- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url)
    yield engine
    await engine.dispose()


async def new_user(engine: AsyncEngine, email: str = "seller@example.com") -> int:
    async with sessions(engine)() as db, db.begin():
        return (await add_user(db, email, "a long password")).id


async def queue(engine: AsyncEngine, user_id: int, addresses: list[str]) -> int:
    """A message queued as `Sender.enqueue` stores it (the checks are tested elsewhere)."""
    return await sendqueue.enqueue(
        engine,
        sendqueue.NewMessage(
            user_id=user_id,
            message_id_header="<test@example.com>",
            from_address="seller@example.com",
            subject="Queued",
            html=HTML,
            text=None,
            requested_opens=True,
            requested_links=True,
            track_opens=True,
            track_links=True,
            untracked_reasons=[],
            recipients=tuple(("to", address, "") for address in addresses),
            links=("https://example.com/pricing",),
        ),
        datetime.now(UTC),
    )


def worker_for(engine: AsyncEngine, smtp: SmtpRecorder, **options: Any) -> SendWorker:
    async def target(user_id: int) -> SmtpTarget:
        return SmtpTarget(smtp.host, smtp.port, timeout=10)

    return SendWorker(engine, KEYS, "http://127.0.0.1:8000", target, **options)


async def statuses(engine: AsyncEngine, message_id: int) -> dict[str, tuple[str, str, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(Recipient.address, Recipient.status, Recipient.error, Recipient.attempts)
            .where(Recipient.message_id == message_id)
            .order_by(Recipient.id)
        )
        return {r.address: (r.status, r.error, r.attempts) for r in rows}


async def message_status(engine: AsyncEngine, message_id: int) -> tuple[str, int, int]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(Message.status, Message.copies_done, Message.copies_total).where(
                    Message.id == message_id
                )
            )
        ).one()
        return row.status, row.copies_done, row.copies_total


async def job_exists(engine: AsyncEngine, message_id: int) -> bool:
    async with engine.connect() as conn:
        found = await conn.scalar(
            select(SendJob.message_id).where(SendJob.message_id == message_id)
        )
        return found is not None


class ScriptedSmtp(SmtpRecorder):
    """A real SMTP server answering DATA from a script (e.g. 451 then 250); after the
    script, 250. Calls `on_mail` (from its thread) after each accepted copy."""

    def __init__(self, script: list[str] | None = None) -> None:
        super().__init__()
        self.script = list(script or [])
        self.on_mail: Any = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.script:
            answer = self.script.pop(0)
            if not answer.startswith("250"):
                return answer
        reply = await super().handle_DATA(server, session, envelope)
        if self.on_mail is not None:
            self.on_mail(len(self.mails))
        return reply


@pytest.fixture
def scripted() -> Iterator[ScriptedSmtp]:
    server = ScriptedSmtp()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        server.port = probe.getsockname()[1]
    controller = Controller(server, hostname="127.0.0.1", port=server.port)
    controller.start()
    yield server
    controller.stop()


# --- restarts ------------------------------------------------------------------------------


async def test_restart_mid_send_never_sends_a_copy_twice(
    engine: AsyncEngine, scripted: ScriptedSmtp
) -> None:
    """Stop the worker between copies, then leave a copy "sending" as a dead worker would:
    the next worker sends each remaining copy once, records the interrupted one "unknown"
    (it may have gone out) and brings the message to a final status."""
    user_id = await new_user(engine)
    addresses = [f"r{n}@example.com" for n in range(5)]
    message_id = await queue(engine, user_id, addresses)
    assert await message_status(engine, message_id) == ("queued", 0, 5)

    # 1. A graceful stop after the second copy: the copy in hand is finished first.
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    scripted.on_mail = lambda count: count == 2 and loop.call_soon_threadsafe(stop.set)
    first = worker_for(engine, scripted)
    await asyncio.wait_for(first.run_forever(stop), timeout=30)
    assert [m.envelope_to for m in scripted.mails] == [[a] for a in addresses[:2]]
    assert await message_status(engine, message_id) == ("sending", 2, 5)
    assert [s for s, _, _ in (await statuses(engine, message_id)).values()] == [
        "sent",
        "sent",
        "queued",
        "queued",
        "queued",
    ]

    # 2. A worker that died holding the job, in the middle of the third copy.
    async with engine.begin() as conn:
        await conn.execute(
            update(Recipient)
            .where(Recipient.message_id == message_id, Recipient.address == addresses[2])
            .values(status="sending", attempts=1)
        )
        await conn.execute(
            update(SendJob)
            .where(SendJob.message_id == message_id)
            .values(
                lease_owner="dead-worker",
                lease_expires_at=datetime.now(UTC) + timedelta(seconds=60),
            )
        )
    second = worker_for(engine, scripted)
    assert await second.run_once() is False  # its lease still holds: nobody takes over yet
    async with engine.begin() as conn:
        await conn.execute(
            update(SendJob)
            .where(SendJob.message_id == message_id)
            .values(lease_expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert await second.run_once() is True
    await second.close()

    sent_to = [m.envelope_to[0] for m in scripted.mails]
    assert sorted(sent_to) == sorted(set(sent_to))  # no copy twice
    assert sent_to == [addresses[0], addresses[1], addresses[3], addresses[4]]
    final = await statuses(engine, message_id)
    assert final[addresses[2]][0] == "unknown"
    assert "may or may not have been delivered" in final[addresses[2]][1]
    assert await message_status(engine, message_id) == ("partial", 5, 5)
    assert not await job_exists(engine, message_id)


async def test_two_workers_share_the_queue_without_overlap(
    engine: AsyncEngine, scripted: ScriptedSmtp
) -> None:
    """Claims are exclusive: two workers drain three messages, each copy goes out once."""
    user_id = await new_user(engine)
    ids = [
        await queue(engine, user_id, [f"m{n}a@example.com", f"m{n}b@example.com"]) for n in range(3)
    ]
    workers = [worker_for(engine, scripted), worker_for(engine, scripted)]

    async def drain(worker: SendWorker) -> None:
        while await worker.run_once():
            pass
        await worker.close()

    await asyncio.wait_for(asyncio.gather(*(drain(w) for w in workers)), timeout=60)
    assert len(scripted.mails) == 6
    assert len({m.envelope_to[0] for m in scripted.mails}) == 6
    for message_id in ids:
        assert (await message_status(engine, message_id))[0] == "sent"


# --- retries and refusals --------------------------------------------------------------------


async def test_transient_451_is_retried_then_delivered(
    engine: AsyncEngine, scripted: ScriptedSmtp
) -> None:
    scripted.script = ["451 4.3.0 try again later"]
    user_id = await new_user(engine)
    message_id = await queue(engine, user_id, ["later@example.com"])
    worker = worker_for(engine, scripted, retry_delays=(0.2, 0.2))
    assert await worker.run_once()
    status, error, attempts = (await statuses(engine, message_id))["later@example.com"]
    assert (status, attempts) == ("queued", 1) and "451" in error
    assert await message_status(engine, message_id) == ("sending", 0, 1)
    assert await worker.run_once() is False  # not due yet: backoff

    async def retried() -> bool:
        return await worker.run_once()

    await eventually(retried, timeout=10)
    await worker.close()
    assert (await statuses(engine, message_id))["later@example.com"] == ("sent", "", 2)
    assert await message_status(engine, message_id) == ("sent", 1, 1)
    assert len(scripted.mails) == 1


async def test_permanent_550_is_recorded_per_recipient(
    engine: AsyncEngine, scripted: ScriptedSmtp
) -> None:
    """A 5xx at RCPT or at DATA fails that copy at once, with the server's answer."""
    scripted.refuse.add("gone@example.com")
    user_id = await new_user(engine)
    message_id = await queue(engine, user_id, ["gone@example.com", "here@example.com"])
    scripted.script = []
    worker = worker_for(engine, scripted)
    assert await worker.run_once()
    await worker.close()
    final = await statuses(engine, message_id)
    assert final["gone@example.com"][0] == "failed"
    assert final["gone@example.com"][1].startswith("550 5.1.1 mailbox unavailable")
    assert final["gone@example.com"][2] == 1  # not retried
    assert final["here@example.com"][0] == "sent"
    assert await message_status(engine, message_id) == ("partial", 2, 2)

    scripted.script = ["554 5.6.0 content rejected"]
    refused = await queue(engine, user_id, ["strict@example.com"])
    worker = worker_for(engine, scripted)
    assert await worker.run_once()
    await worker.close()
    assert (await statuses(engine, refused))["strict@example.com"][:2] == (
        "failed",
        "554 5.6.0 content rejected",
    )
    assert await message_status(engine, refused) == ("failed", 1, 1)


# --- the embedded outbox ------------------------------------------------------------------


async def test_outbox_accepts_only_mail_with_its_run_secret(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """Any local process could inject mail into a user's outbox; now it needs the secret the
    running outbox made for itself (kept in a 0600 file for our own processes)."""
    address_file = tmp_path / "outbox.json"
    outbox = Outbox(engine, address_file=address_file)
    await outbox.start()
    try:
        assert address_file.stat().st_mode & 0o777 == 0o600
        assert json.loads(address_file.read_text())["port"] == outbox.port
        mail = b"From: a@example.com\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\nHi\r\n"

        def submit(password: str | None) -> str:
            with smtplib.SMTP(outbox.host, outbox.port, timeout=10) as client:
                if password is not None:
                    try:
                        client.login("mailbeacon", password)
                    except smtplib.SMTPAuthenticationError as exc:
                        return f"login {exc.smtp_code}"
                try:
                    client.sendmail("owner@example.com", ["x@example.com"], mail)
                except smtplib.SMTPException as exc:
                    return f"refused {getattr(exc, 'smtp_code', exc)}"
                return "accepted"

        assert await asyncio.to_thread(submit, None) == "refused 530"
        assert await asyncio.to_thread(submit, "guessed") == "login 535"
        secret = outbox.target.password
        assert await asyncio.to_thread(submit, secret) == "accepted"
        async with engine.connect() as conn:
            subjects = (await conn.execute(select(OutboxMail.subject))).scalars().all()
        assert subjects == ["Grüße"]
    finally:
        await outbox.stop()
    assert not address_file.exists()
    # A new run, a new secret: the old one no longer opens the door.
    again = Outbox(engine)
    await again.start()
    try:
        assert again.target.password != secret
    finally:
        await again.stop()


def test_outbox_reads_only_the_header_block() -> None:
    """The subject comes from the headers alone, however big (or odd) the body."""
    body = b"Subject: not a header\r\n" + b"x" * 20_000_000
    raw = b"Subject: Real one\r\nFrom: a@example.com\r\n\r\n" + body
    assert header_block(raw) == b"Subject: Real one\r\nFrom: a@example.com"
    started = time.perf_counter()
    assert subject_of(raw) == "Real one"
    assert time.perf_counter() - started < 0.5  # not a parse of 20 MB
    assert subject_of(b"no headers at all") == ""
    assert subject_of(b"Subject: " + b"y" * 100_000)  # an endless header is cut, not parsed whole


# --- limits ----------------------------------------------------------------------------------


def links_body(count: int) -> str:
    return "".join(f'<p><a href="https://example.com/p/{n}">link {n}</a></p>' for n in range(count))


async def test_limits_give_a_clear_422_with_field_and_limit(live: LiveApp) -> None:
    async def post(**body: Any) -> httpx.Response:
        return await live.client.post("/api/v1/messages", json=body, headers=live.auth())

    many = [f"r{n}@example.com" for n in range(MAX_RECIPIENTS // 2 + 1)]
    response = await post(to=many, cc=many, html=HTML)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "to"] and error["limit"] == MAX_RECIPIENTS
    assert error["code"] == "too_many_recipients"

    response = await post(to=["a@example.com"], html=links_body(MAX_LINKS + 1))
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "html"] and error["limit"] == MAX_LINKS
    assert error["code"] == "too_many_links"
    assert f"At most {MAX_LINKS} different links per email." in error["msg"]
    untracked = await post(to=["a@example.com"], html=links_body(MAX_LINKS + 1), track_links=False)
    assert untracked.status_code == 422  # the limit bounds the body, tracked or not
    at_limit = await post(to=["a@example.com"], html=links_body(MAX_LINKS), track_links=True)
    assert at_limit.status_code == 201, at_limit.text
    assert len(at_limit.json()["links"]) == MAX_LINKS


async def test_huge_recipient_field_is_refused_before_parsing(live: LiveApp) -> None:
    """A 2.8 MB `to` string is refused by its length, not after parsing it on the loop."""
    huge = "a@example.com, " * 190_000
    started = time.perf_counter()
    response = await live.client.post(
        "/api/v1/messages", json={"to": [huge], "html": HTML}, headers=live.auth()
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["code"] == "too_long"
    assert time.perf_counter() - started < 5


async def test_composer_says_the_link_limit_in_the_users_language(live: LiveApp) -> None:
    engine = make_engine(live.settings.effective_database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(update(User).where(User.id == live.user_id).values(locale="de"))
    finally:
        await engine.dispose()
    browser = await sign_in(live, live.email)
    try:
        form = {"to": "a@example.com", "subject": "Links", "format": "html", "track_links": "1"}
        response = await browser.post("/mail/new", {**form, "body": links_body(MAX_LINKS + 1)})
        assert response.status_code == 422
        assert 'id="body-error"' in response.text
        assert f"Höchstens {MAX_LINKS} verschiedene Links pro E-Mail." in response.text
    finally:
        await browser.aclose()


# --- live progress ---------------------------------------------------------------------------


async def test_pages_show_progress_and_the_status_endpoint_is_private(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    response = await live.client.post(
        "/api/v1/messages",
        json={"to": ["a@example.com", "b@example.com"], "html": HTML},
        headers=live.auth(),
    )
    queued = response.json()
    assert queued["status"] == "queued"
    assert {r["status"] for r in queued["recipients"]} <= {"queued", "sending", "sent"}
    await delivered(live.client, queued["id"], live.auth())
    browser = await sign_in(live, live.email)
    try:
        progress = await browser.get(f"/mail/progress?id={queued['id']}&id=x&id=²&id={2**70}")
        assert progress.status_code == 200
        assert progress.json() == {
            "messages": [{"id": queued["id"], "status": "sent", "done": 2, "total": 2}]
        }
        await live.add_user("other@example.com")
        other = await sign_in(live, "other@example.com")
        assert (await other.get(f"/mail/progress?id={queued['id']}")).json() == {"messages": []}
        await other.aclose()
    finally:
        await browser.aclose()
