"""S12, B2: the sender's Sent folder holds exactly one clean copy of each message.

Against a real IMAP server (Dovecot) and a test double of a provider that saves
submitted mail itself: its SMTP server APPENDs every copy it receives to the
user's Sent folder, as Gmail and Microsoft 365 do, so Sent starts out with one
*tracked* copy per recipient. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import imapclient
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select, update

from mailbeacon.core.sentcopy import SENT_COPY_HEADER
from mailbeacon.mail import imap, sentfolder
from mailbeacon.mail.sentfolder import SentFolder
from mailbeacon.store import sentcopies
from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.mailboxes import load_mailbox, save_imap, save_mailbox
from mailbeacon.store.sentcopies import SentCopyState
from mailbeacon.store.tables import Message
from tests.conftest import LiveApp
from tests.dovecot import MAIL_PASSWORD, MAIL_USER, DovecotServer
from tests.helpers import delivered, eventually, free_port
from tests.web_helpers import sign_in

HTML = (
    '<p>Hello, see <a href="https://example.com/pricing?plan=pro&amp;seats=5">our prices</a>'
    " and <a href='https://example.org/demo'>book a demo</a>.</p>"
)
TEXT = "Hello, see our prices: https://example.com/pricing?plan=pro&seats=5"
TO, CC, BCC = "ann@example.com", "bob@example.com", "carl@example.com"


@dataclass
class SavingProvider:
    """An SMTP server that keeps what it receives AND saves it in the sender's Sent folder."""

    imap: DovecotServer
    port: int = 0
    received: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = bytes(envelope.original_content or b"")
        self.received.append(raw)
        await asyncio.to_thread(self.imap.append, MAIL_USER, "Sent", raw)
        return "250 OK"


@pytest.fixture
def provider(dovecot: DovecotServer) -> Iterator[SavingProvider]:
    handler = SavingProvider(dovecot, free_port())
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    yield handler
    controller.stop()


async def set_up_mailbox(
    live: LiveApp, provider: SavingProvider, *, imap_password: str | None = MAIL_PASSWORD
) -> None:
    """The user's own mailbox: SMTP at the provider; IMAP at Dovecot unless None."""
    engine = make_engine(live.settings.effective_database_url)
    try:
        async with sessions(engine)() as db, db.begin():
            fernet = live.settings.fernet()
            await save_mailbox(
                db,
                fernet,
                live.user_id,
                host="127.0.0.1",
                port=provider.port,
                security="none",
                username="",
                password="",
            )
            if imap_password is not None:
                await save_imap(
                    db,
                    fernet,
                    live.user_id,
                    host=provider.imap.host,
                    port=provider.imap.port,
                    security="none",
                    username=MAIL_USER,
                    password=imap_password,
                )
    finally:
        await engine.dispose()


async def send_three(live: LiveApp) -> dict[str, Any]:
    response = await live.client.post(
        "/api/v1/messages",
        json={
            "to": [f"Ann <{TO}>"],
            "cc": [CC],
            "bcc": [BCC],
            "subject": "Our prices",
            "html": HTML,
            "text": TEXT,
            "track_opens": True,
            "track_links": True,
        },
        headers=live.auth(),
    )
    assert response.status_code == 201, response.text
    detail: dict[str, Any] = await delivered(live.client, response.json()["id"], live.auth())
    assert detail["status"] == "sent", detail
    return detail


async def sent_copy_state(live: LiveApp, message_id: int) -> SentCopyState:
    state = await sentcopies.state_of(live.runtime.engine, live.user_id, message_id)
    assert state is not None
    return state


async def final_state(live: LiveApp, message_id: int) -> SentCopyState:
    async def final() -> SentCopyState | None:
        state = await sent_copy_state(live, message_id)
        return state if state.status in ("done", "failed", "skipped") else None

    result: SentCopyState = await eventually(final, timeout=30)
    return result


def sent_folder(dovecot: DovecotServer) -> list[tuple[EmailMessage, bytes, tuple[bytes, ...]]]:
    found = []
    for _uid, raw, flags in dovecot.messages(MAIL_USER, "Sent"):
        parsed = message_from_bytes(raw, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        found.append((parsed, raw, flags))
    return found


async def test_sent_holds_exactly_one_clean_copy_of_a_message_to_three_recipients(
    serve_app: Any, database_url: str, provider: SavingProvider
) -> None:
    live: LiveApp = await serve_app(database_url)
    await set_up_mailbox(live, provider)
    detail = await send_three(live)

    state = await final_state(live, detail["id"])
    assert (state.status, state.error, state.removed) == ("done", "", 3)

    assert len(provider.received) == 3  # the provider did save three tracked copies
    tracked_ids = {
        message_from_bytes(raw, policy=default_policy)["Message-ID"] for raw in provider.received
    }
    [(copy, raw, flags)] = sent_folder(provider.imap)
    assert imapclient.SEEN in flags
    assert {copy["Message-ID"]} == tracked_ids
    assert copy["To"] == f"Ann <{TO}>"
    assert copy["Cc"] == CC
    assert copy["Bcc"] == BCC
    assert copy[SENT_COPY_HEADER] == "clean"
    html = copy.get_body(preferencelist=("html",))
    text = copy.get_body(preferencelist=("plain",))
    assert html is not None and text is not None
    assert html.get_content().strip() == HTML
    assert text.get_content().strip() == TEXT
    assert not re.search(rb"/o/|/c/", raw), "a pixel or a tracked link in the Sent copy"


async def test_a_worker_stopped_midway_leaves_no_duplicate_in_sent(
    serve_app: Any, database_url: str, provider: SavingProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first try dies after APPEND (before removing the tracked copies or recording
    anything); the next worker finds the clean copy, saves no second one, and cleans up."""
    live: LiveApp = await serve_app(database_url)
    await set_up_mailbox(live, provider)
    died = asyncio.Event()

    def dies_before_removing(box: imap.ImapSession, uids: list[int]) -> None:
        died.set()
        raise RuntimeError("the worker process was stopped")

    monkeypatch.setattr(sentfolder, "remove", dies_before_removing)
    detail = await send_three(live)
    await eventually(lambda: asyncio.sleep(0, died.is_set()), timeout=30)
    copies = sent_folder(provider.imap)
    assert sum(1 for copy, _, _ in copies if copy[SENT_COPY_HEADER]) == 1
    assert len(copies) == 4  # the clean copy and the provider's three tracked ones
    assert (await sent_copy_state(live, detail["id"])).status == "pending"

    # The dead worker's lease runs out; a new worker (a fresh SentFolder) takes over.
    monkeypatch.undo()
    async with live.runtime.engine.begin() as conn:
        await conn.execute(
            update(Message).where(Message.id == detail["id"]).values(sent_copy_next_at=None)
        )
    restarted = SentFolder(live.runtime.engine, live.runtime.fernet, allow_private=True)
    await restarted.run_once()

    state = await final_state(live, detail["id"])
    assert (state.status, state.removed) == ("done", 3)
    [(copy, _raw, _flags)] = sent_folder(provider.imap)
    assert copy[SENT_COPY_HEADER] == "clean"


async def test_a_wrong_imap_password_is_a_clear_error_until_the_user_corrects_it(
    serve_app: Any, database_url: str, provider: SavingProvider
) -> None:
    live: LiveApp = await serve_app(database_url)
    await set_up_mailbox(live, provider, imap_password="not the password")
    detail = await send_three(live)

    state = await final_state(live, detail["id"])
    assert (state.status, state.error) == ("failed", imap.LOGIN_FAILED)
    async with sessions(live.runtime.engine)() as db:
        mailbox = await load_mailbox(db, live.user_id)
    assert mailbox is not None and mailbox.imap_error == imap.LOGIN_FAILED

    browser = await sign_in(live, live.email)
    try:
        page = await browser.get(f"/mail/{detail['id']}")
        assert page.status_code == 200
        assert "did not accept the user name and password" in page.text
        settings = await browser.get("/settings/mailbox")
        assert "did not accept the user name and password" in settings.text
        # Nothing was saved in Sent, and the provider's tracked copies are still there.
        assert len(sent_folder(provider.imap)) == 3

        # The user puts the right password in: the failed copy is tried again, and saved.
        fixed = await browser.post(
            "/settings/mailbox/imap",
            {
                "imap_host": provider.imap.host,
                "imap_port": str(provider.imap.port),
                "imap_security": "none",
                "imap_username": MAIL_USER,
                "imap_password": MAIL_PASSWORD,
            },
        )
        assert fixed.status_code == 303
    finally:
        await browser.aclose()
    state = await final_state(live, detail["id"])
    assert (state.status, state.error, state.removed) == ("done", "", 3)
    [(copy, _raw, _flags)] = sent_folder(provider.imap)
    assert copy[SENT_COPY_HEADER] == "clean"


async def test_without_imap_the_sent_copy_is_skipped_and_a_hint_shown(
    serve_app: Any, database_url: str, provider: SavingProvider
) -> None:
    live: LiveApp = await serve_app(database_url)
    await set_up_mailbox(live, provider, imap_password=None)
    detail = await send_three(live)
    state = await final_state(live, detail["id"])
    assert state.status == "skipped"
    browser = await sign_in(live, live.email)
    try:
        page = await browser.get(f"/mail/{detail['id']}")
        assert "Set up IMAP" in page.text
    finally:
        await browser.aclose()


async def test_an_unreachable_imap_server_is_retried_later_with_the_reason_shown(
    serve_app: Any, database_url: str, provider: SavingProvider
) -> None:
    live: LiveApp = await serve_app(database_url)
    await set_up_mailbox(live, provider)
    async with sessions(live.runtime.engine)() as db, db.begin():
        mailbox = await load_mailbox(db, live.user_id)
        assert mailbox is not None
        mailbox.imap_port = free_port()  # nothing listens there
    detail = await send_three(live)

    async def retried() -> SentCopyState | None:
        state = await sent_copy_state(live, detail["id"])
        return state if state.attempts else None

    state = await eventually(retried, timeout=30)
    assert (state.status, state.error) == ("pending", imap.UNREACHABLE)
    async with live.runtime.engine.connect() as conn:
        next_at = await conn.scalar(
            select(Message.sent_copy_next_at).where(Message.id == detail["id"])
        )
    assert next_at is not None and next_at > datetime.now(UTC)
    browser = await sign_in(live, live.email)
    try:
        page = await browser.get(f"/mail/{detail['id']}")
        assert "Will try again: No IMAP server could be reached there." in page.text
    finally:
        await browser.aclose()
