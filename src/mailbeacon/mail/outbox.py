"""The embedded outbox: a real SMTP server, in process, that keeps what it receives.

With no SMTP server configured, sent mail still crosses a real SMTP hop and
lands here, so the day-one flow (send, open as the recipient, click) works on
a laptop. It runs on the application's own event loop.
"""

from __future__ import annotations

import asyncio
import logging
from email import message_from_bytes
from email.header import decode_header, make_header
from email.policy import default
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.ext.asyncio import AsyncEngine

from mailbeacon.store.db import sessions
from mailbeacon.store.tables import OutboxMail

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = 25 * 1024 * 1024


def _subject_of(raw: bytes) -> str:
    parsed = message_from_bytes(raw, policy=default)
    try:
        return str(make_header(decode_header(str(parsed.get("Subject", "")))))
    except (ValueError, LookupError):
        return str(parsed.get("Subject", ""))


class OutboxHandler:
    """aiosmtpd handler storing every accepted message in the outbox table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = sessions(engine)
        self.received = asyncio.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        async with self._sessions() as db, db.begin():
            db.add(
                OutboxMail(
                    envelope_from=str(envelope.mail_from or ""),
                    envelope_to=[str(r) for r in envelope.rcpt_tos],
                    subject=_subject_of(raw)[:2000],
                    raw=raw,
                )
            )
        self.received.set()
        return "250 Message accepted for delivery"


class Outbox:
    """Start and stop the outbox SMTP server on the running loop."""

    def __init__(self, engine: AsyncEngine, host: str = "127.0.0.1", port: int = 0) -> None:
        self.handler = OutboxHandler(engine)
        self.host = host
        self.port = port
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()

        def factory() -> Any:
            return SMTP(
                self.handler,
                hostname="mailbeacon-outbox",
                data_size_limit=MAX_MESSAGE_BYTES,
                enable_SMTPUTF8=True,
                loop=loop,
            )

        self._server = await loop.create_server(factory, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("embedded outbox listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def url(self) -> str:
        """The SMTP URL to send to."""
        return f"smtp://{self.host}:{self.port}"
