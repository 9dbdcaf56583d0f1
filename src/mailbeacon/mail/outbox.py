"""The embedded outbox: a real SMTP server that keeps what it receives.

With no SMTP server configured, sent mail still crosses a real SMTP hop and
lands here, so the day-one flow (send, open as the recipient, click) works on
a laptop. It runs in the process that sends (the send worker), on loopback.

Only MailBeacon may put mail in it: the server demands SMTP AUTH with a
secret made fresh at every start. The running outbox writes its address and
that secret to `var/outbox.json` (mode 0600), so other MailBeacon processes of
the same installation (the web app's "send test email") can reach it; any
other local user or process cannot inject mail into a user's outbox.

Reading a received message costs only its header block: the subject is taken
from at most `MAX_HEADER_BYTES` with `BytesHeaderParser`, never by parsing the
whole message on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import secrets
import warnings
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import default
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from sqlalchemy.ext.asyncio import AsyncEngine

from mailbeacon.mail.smtp import SmtpTarget
from mailbeacon.store.db import sessions
from mailbeacon.store.tables import OutboxMail

log = logging.getLogger(__name__)


class _QuietAuthWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "auth_require_tls == False" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_QuietAuthWarning())
MAX_MESSAGE_BYTES = 25 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
USERNAME = "mailbeacon"


def header_block(raw: bytes) -> bytes:
    """The message's header section (up to the first blank line), at most MAX_HEADER_BYTES."""
    head = raw[:MAX_HEADER_BYTES]
    ends = [i for i in (head.find(b"\r\n\r\n"), head.find(b"\n\n")) if i >= 0]
    return head[: min(ends)] if ends else head


def subject_of(raw: bytes) -> str:
    """The decoded Subject, read from the header block alone; never raises."""
    headers = BytesHeaderParser(policy=default).parsebytes(header_block(raw))
    try:
        value = str(headers.get("Subject", ""))
    except (ValueError, LookupError, IndexError):
        return ""
    try:
        return str(make_header(decode_header(value)))
    except (ValueError, LookupError):
        return value


class OutboxHandler:
    """aiosmtpd handler storing every accepted message in the outbox table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = sessions(engine)
        self.received = asyncio.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if not session.authenticated:  # auth_required refuses before DATA; never rely on one check
            return "530 5.7.0 Authentication required"
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        async with self._sessions() as db, db.begin():
            db.add(
                OutboxMail(
                    envelope_from=str(envelope.mail_from or ""),
                    envelope_to=[str(r) for r in envelope.rcpt_tos],
                    subject=subject_of(raw)[:2000],
                    raw=raw,
                )
            )
        self.received.set()
        return "250 Message accepted for delivery"


class Outbox:
    """Start and stop the outbox SMTP server on the running loop."""

    def __init__(
        self,
        engine: AsyncEngine,
        host: str = "127.0.0.1",
        port: int = 0,
        address_file: Path | None = None,
    ) -> None:
        self.handler = OutboxHandler(engine)
        self.host = host
        self.port = port
        self.address_file = address_file
        self._secret = secrets.token_urlsafe(32)
        self._server: asyncio.base_events.Server | None = None

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and hmac.compare_digest(data.login, USERNAME.encode())
            and hmac.compare_digest(data.password, self._secret.encode())
        )
        return AuthResult(success=ok, handled=False)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()

        def factory() -> Any:
            # aiosmtpd warns, per connection, that AUTH without TLS can leak the
            # password: here it never leaves loopback, and it is new every run.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return self._smtp(loop)

        self._server = await loop.create_server(factory, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.address_file is not None:
            _write_private(self.address_file, json.dumps(self.target_fields()))
        log.info("embedded outbox listening on %s:%d", self.host, self.port)

    def _smtp(self, loop: asyncio.AbstractEventLoop) -> SMTP:
        return SMTP(
            self.handler,
            hostname="mailbeacon-outbox",
            data_size_limit=MAX_MESSAGE_BYTES,
            enable_SMTPUTF8=True,
            authenticator=self._authenticate,
            auth_required=True,
            # Loopback only; the secret is what keeps other processes out.
            auth_require_tls=False,
            loop=loop,
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            if self.address_file is not None:
                with contextlib.suppress(FileNotFoundError):
                    self.address_file.unlink()

    @property
    def running(self) -> bool:
        return self._server is not None

    def target_fields(self) -> dict[str, object]:
        return {
            "host": self.host,
            "port": self.port,
            "username": USERNAME,
            "password": self._secret,
        }

    @property
    def target(self) -> SmtpTarget:
        """Where and how to send to this outbox (with its secret)."""
        return SmtpTarget(self.host, self.port, "none", USERNAME, self._secret, outbox=True)

    @property
    def url(self) -> str:
        """The SMTP URL, without credentials (for display)."""
        return f"smtp://{self.host}:{self.port}"


def read_target(address_file: Path) -> SmtpTarget | None:
    """The running outbox's address and secret, as another process of ours finds them."""
    try:
        fields = json.loads(address_file.read_text(encoding="utf-8"))
        return SmtpTarget(
            str(fields["host"]),
            int(fields["port"]),
            "none",
            str(fields["username"]),
            str(fields["password"]),
            outbox=True,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_private(path: Path, content: str) -> None:
    """Write a file only its owner can read, replacing any older one atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)
    os.replace(temporary, path)
