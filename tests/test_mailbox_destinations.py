"""Sends through a user's own mailbox obey the same destination rule as "send test email".

Users type their mailbox's host name, so a saved mailbox must not become a way to reach
loopback, private or metadata addresses from the server (issue 6, rule 6), and the address
that was checked is the one connected to (no second DNS answer in between).
"""

from __future__ import annotations

from typing import Any

from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.mailboxes import save_mailbox
from tests.conftest import LiveApp, SmtpRecorder
from tests.helpers import delivered


async def _save_mailbox(live: LiveApp, host: str, port: int) -> None:
    engine = make_engine(live.settings.effective_database_url)
    try:
        async with sessions(engine)() as db, db.begin():
            await save_mailbox(
                db,
                live.settings.fernet(),
                live.user_id,
                host=host,
                port=port,
                security="none",
                username="",
                password="",
            )
    finally:
        await engine.dispose()


async def _send(live: LiveApp) -> dict[str, Any]:
    response = await live.client.post(
        "/api/v1/messages",
        headers=live.auth(),
        json={"to": ["ann@example.com"], "subject": "Hello", "text": "Hi Ann"},
    )
    assert response.status_code in (200, 201, 202), response.text
    detail: dict[str, Any] = await delivered(live.client, response.json()["id"], live.auth())
    return detail


async def test_saved_mailbox_on_a_private_address_is_refused_at_send(
    serve_app: Any, database_url: str, smtp_server: SmtpRecorder
) -> None:
    """With SMTP_ALLOW_PRIVATE off, a mailbox on loopback fails every copy, sends nothing."""
    live: LiveApp = await serve_app(database_url, smtp_allow_private=False)
    await _save_mailbox(live, "127.0.0.1", smtp_server.port)
    detail = await _send(live)
    assert detail["status"] == "failed"
    (recipient,) = detail["recipients"]
    assert recipient["status"] == "failed"
    assert "private or local network" in recipient["error"]
    assert smtp_server.mails == []


async def test_saved_mailbox_is_reached_at_its_checked_address(
    serve_app: Any, database_url: str, smtp_server: SmtpRecorder
) -> None:
    """Allowed (as an operator may), a name is resolved once, checked, and delivered to."""
    live: LiveApp = await serve_app(database_url, smtp_allow_private=True)
    await _save_mailbox(live, "localhost", smtp_server.port)
    detail = await _send(live)
    assert detail["status"] == "sent", detail
    assert smtp_server.to("ann@example.com").envelope_from == live.email
