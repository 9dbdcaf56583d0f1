"""Shared fixtures: real databases (SQLite and PostgreSQL), a real SMTP server, a real
HTTP server running the whole app."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from sqlalchemy import text

from mailbeacon.app import create_app
from mailbeacon.settings import Settings, load_settings
from mailbeacon.store.accounts import add_user, create_api_token
from mailbeacon.store.db import make_engine, migrate, sessions
from mailbeacon.store.tables import Base

# A real IMAP server (Dovecot) for the mailbox tests: the `dovecot` and `start_dovecot` fixtures.
pytest_plugins = ("tests.dovecot",)

PG_HOST = os.environ.get("MAILBEACON_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("MAILBEACON_TEST_PG_PORT", "5432"))
TEST_SECRET = "test-secret-key-0123456789abcdef"
# The cheapest argon2 parameters for the hundreds of users the tests create (read by
# store/accounts.py), and the loopback SMTP servers the tests run allowed as mailboxes.
os.environ.setdefault("MAILBEACON_TEST_CHEAP_HASHES", "1")
os.environ.setdefault("MAILBEACON_SMTP_ALLOW_PRIVATE", "true")

# The machine is shared and noisy: a per-example deadline measures the neighbours,
# not our code, and made property tests flaky. Where speed matters it is measured in
# bench/ or by a self-relative ratio. CI runs derandomized, so a failure reproduces.
hypothesis_settings.register_profile(
    "mailbeacon",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=os.environ.get("CI") == "true",
    print_blob=True,
)
hypothesis_settings.load_profile("mailbeacon")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what each test needs, so `-m "not postgres"` or `-m "not browser"` selects."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        uses_postgres = "postgres_server_url" in getattr(item, "fixturenames", ())
        if callspec is not None and callspec.params.get("database_url") == "postgres":
            uses_postgres = True
        if uses_postgres:
            item.add_marker(pytest.mark.postgres)
        if "browser" in item.nodeid.split("/"):
            item.add_marker(pytest.mark.browser)


def _postgres_user() -> str | None:
    """A PostgreSQL role that can create databases, or None when there is no server."""

    async def probe(user: str) -> bool:
        try:
            conn = await asyncpg.connect(
                host=PG_HOST, port=PG_PORT, user=user, database="test", timeout=3
            )
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        await conn.close()
        return True

    for user in ("postgres", "root"):
        if asyncio.run(probe(user)):
            return user
    return None


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session, dropped at the end."""
    user = _postgres_user()
    if user is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI but not reachable at {PG_HOST}:{PG_PORT}")
        pytest.skip(f"no PostgreSQL at {PG_HOST}:{PG_PORT} (required when CI=true)")
    name = f"mailbeacon_test_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=user, database="test")
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = f"postgresql+asyncpg://{user}@{PG_HOST}:{PG_PORT}/{name}"
    migrate(url)
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_server_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("sqlite") / "mailbeacon.db"
    url = f"sqlite+aiosqlite:///{path}"
    migrate(url)
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each storage test runs on both backends, on an emptied database."""
    url: str = request.getfixturevalue(f"{request.param}_server_url")
    asyncio.run(_empty(url))
    return url


async def _empty(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                await conn.execute(text(f"DELETE FROM {table.name}"))
    finally:
        await engine.dispose()


@dataclass
class CapturedMail:
    envelope_from: str
    envelope_to: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def body(self, subtype: str) -> str | None:
        part = self.message.get_body(preferencelist=(subtype,))
        if part is None or part.get_content_subtype() != subtype:
            return None
        content = part.get_content()
        assert isinstance(content, str)
        return content


@dataclass
class SmtpRecorder:
    """A real SMTP server (aiosmtpd in a thread) that keeps what it receives."""

    host: str = "127.0.0.1"
    port: int = 0
    mails: list[CapturedMail] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.lower() in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.mails.append(
            CapturedMail(
                str(envelope.mail_from),
                list(envelope.rcpt_tos),
                bytes(envelope.original_content or b""),
            )
        )
        return "250 OK"

    def to(self, address: str) -> CapturedMail:
        matches = [m for m in self.mails if address in m.envelope_to]
        assert len(matches) == 1, f"{len(matches)} mails to {address}"
        return matches[0]

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"


@pytest.fixture
def smtp_server() -> Iterator[SmtpRecorder]:
    recorder = SmtpRecorder()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        recorder.port = probe.getsockname()[1]
    controller = Controller(recorder, hostname="127.0.0.1", port=recorder.port)
    controller.start()
    yield recorder
    controller.stop()


@dataclass
class LiveApp:
    """The whole app served over real HTTP, with a signed-in API user."""

    settings: Settings
    base_url: str
    client: httpx.AsyncClient
    token: str
    user_id: int
    app: object
    email: str = ""

    async def add_user(self, email: str) -> tuple[int, str]:
        engine = make_engine(self.settings.effective_database_url)
        try:
            async with sessions(engine)() as db, db.begin():
                user = await add_user(db, email, "a long password")
                return user.id, await create_api_token(db, user)
        finally:
            await engine.dispose()

    @property
    def runtime(self) -> Any:
        """The Runtime behind the app, through whatever middleware wraps it."""
        layer: Any = self.app
        while not hasattr(layer, "state"):
            layer = layer.app
        return layer.state.runtime

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.token}"}


def bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@pytest.fixture
async def serve_app(tmp_path: Path) -> AsyncIterator[object]:
    """A factory: serve the app for given settings overrides over real HTTP."""
    servers: list[tuple[uvicorn.Server, asyncio.Task[None], httpx.AsyncClient]] = []

    async def start(
        database_url: str, public_url: str = "", public_path: str = "", **overrides: object
    ) -> LiveApp:
        """PUBLIC_URL is `public_url` (default: the server's own address) + `public_path`."""
        sock = bound_socket()
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        settings = load_settings(
            var_dir=tmp_path / f"var{len(servers)}",
            database_url=database_url,
            public_url=(public_url or base_url) + public_path,
            secret_keys=TEST_SECRET,
            process_interval=0.05,
            **overrides,
        )
        app = create_app(settings)
        server = uvicorn.Server(
            # Like `serve`: forwarding headers are the app's business (TRUSTED_PROXIES).
            uvicorn.Config(
                app, log_level="warning", access_log=False, lifespan="on", proxy_headers=False
            )
        )
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        client = httpx.AsyncClient(base_url=base_url, timeout=15)
        servers.append((server, task, client))
        live = LiveApp(settings, base_url, client, "", 0, app)
        live.email = f"owner{len(servers)}@example.com"
        live.user_id, live.token = await live.add_user(live.email)
        return live

    yield start
    for server, task, client in servers:
        await client.aclose()
        server.should_exit = True
        await task


@pytest.fixture
async def live(serve_app: object, database_url: str, smtp_server: SmtpRecorder) -> LiveApp:
    """The app on each backend, sending to the test's SMTP server."""
    return await serve_app(database_url, smtp_url=smtp_server.url)  # type: ignore[operator, no-any-return]
