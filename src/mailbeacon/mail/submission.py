"""The SMTP submission service (B12): tracked mail from Outlook, Apple Mail, Thunderbird.

A mail client signs in with an app password (`store.app_passwords`) and submits
a message as it would to any provider. MailBeacon stores it like one written in
the composer and puts it in the same send queue: one copy per envelope
recipient, each with its own pixel and link tokens (B1), made from the client's
own bytes (`core.submitted`), so attachments, inline images and headers arrive
as written. Recipients the envelope has but To and Cc do not are Bcc.

Security, in the order a client meets it:
- TLS first: on the STARTTLS port every command but EHLO, STARTTLS, NOOP and
  QUIT is refused until TLS is up, and AUTH is not even offered before; the
  implicit-TLS port is TLS from the first byte. A password never crosses the
  network in clear.
- AUTH PLAIN or LOGIN with the user's email address and an app password;
  failures are counted per client address and refused for a while past a limit.
- Nothing is relayed for anyone unauthenticated: MAIL, RCPT and DATA need AUTH.
- The From header must be the signed-in user's own address (they cannot send
  as a colleague through the server-wide SMTP).
- Sizes are capped before work: the message (MAX_SUBMISSION_BYTES, refused as
  it arrives), recipients (MAX_RECIPIENTS), each body and its links as in the
  composer (`core.limits`).

It runs in the worker process beside the send worker and the outbox, never on
the loop that answers pixels (DESIGN rule 1), and the message is read in the
`CpuPool` (it costs time in proportion to its size).
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import logging
import ssl
import time
import warnings
from base64 import b64decode
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, Session
from sqlalchemy.ext.asyncio import AsyncEngine

from mailbeacon.core.addresses import Mailbox, is_addr_spec
from mailbeacon.core.limits import MAX_BODY_CHARS, MAX_LINKS, MAX_RECIPIENTS, MAX_SUBJECT
from mailbeacon.core.policy import (
    Switches,
    TrackingDecision,
    Untracked,
    decide,
    link_problem_codes,
)
from mailbeacon.core.rewrite import find_html_links, find_link_problems, find_text_links
from mailbeacon.core.submitted import (
    MAX_SUBMISSION_BYTES,
    TRACK_HEADER,
    InvalidSubmission,
    Submission,
    new_message_id,
    read_submission,
)
from mailbeacon.cpupool import CpuPool
from mailbeacon.mail.prepare import SenderProfile
from mailbeacon.mail.sending import profile_of
from mailbeacon.store import sendqueue
from mailbeacon.store.app_passwords import user_for_app_password
from mailbeacon.store.db import sessions
from mailbeacon.store.tables import User

log = logging.getLogger(__name__)

# Failed sign-ins per client address before AUTH is refused, and over how long.
MAX_FAILURES = 10
FAILURE_WINDOW = 15 * 60.0
OK_QUEUED = "250 2.0.0 Queued as {id}: MailBeacon sends one tracked copy per recipient"
AUTH_REQUIRED = "530 5.7.0 Authentication required"


class _QuietAuthWarning(logging.Filter):
    """aiosmtpd warns about its own choices on every connection or sign-in; they are ours."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return "auth_require_tls == False" not in text and "login_data is deprecated" not in text


logging.getLogger("mail.log").addFilter(_QuietAuthWarning())


@dataclass(frozen=True, slots=True)
class Refusal:
    """A submitted message we will not send: the SMTP reply that says why."""

    reply: str


@dataclass(frozen=True, slots=True)
class SignedIn:
    """Who a session authenticated as (aiosmtpd keeps it as `session.auth_data`)."""

    login: bytes
    user_id: int


def _recipients(
    submission: Submission, envelope: list[str]
) -> tuple[tuple[str, str, str], ...] | Refusal:
    """(field, address, name) per envelope recipient, each once; Bcc: not in To or Cc."""
    shown: dict[str, tuple[str, str]] = {}
    for field, boxes in (("cc", submission.cc), ("to", submission.to)):  # To wins over Cc
        for name, address in boxes:
            shown[address.lower()] = (field, name)
    found: dict[str, tuple[str, str, str]] = {}
    for address in envelope:
        key = address.lower()
        if key in found:
            continue
        if not is_addr_spec(address):
            return Refusal(f"553 5.1.3 Not an address MailBeacon can send to: {address[:100]}")
        field, name = shown.get(key, ("bcc", ""))
        found[key] = (field, address, Mailbox(address, name).name[:200])
    if len(found) > MAX_RECIPIENTS:
        return Refusal(f"452 5.5.3 At most {MAX_RECIPIENTS} recipients per message")
    return tuple(found.values())


def _links(submission: Submission, public_url: str) -> list[str]:
    found: list[str] = []
    for kind, content in submission.bodies:
        found += find_html_links(content) if kind == "html" else find_text_links(content)
    ours = (f"{public_url}/c/", f"{public_url}/o/")
    return [url for url in dict.fromkeys(found) if not url.startswith(ours)]


def _decision(
    profile: SenderProfile, submission: Submission, opens: bool, wants_links: bool, links: list[str]
) -> TrackingDecision:
    if submission.sealed:
        return TrackingDecision(False, False, (Untracked.SEALED,))
    return decide(
        Switches(profile.open_tracking, profile.link_tracking),
        want_opens=opens,
        want_links=wants_links,
        html=submission.html,
        text=submission.text,
        has_links=bool(links),
    )


def check_submission(
    user_id: int, profile: SenderProfile, raw: bytes, envelope: list[str], public_url: str
) -> sendqueue.NewMessage | Refusal:
    """Read a submitted message and decide its tracking, as the composer's `prepare` does.

    Runs in a `CpuPool` process. The result carries no bytes (the caller has them).
    """
    try:
        submission = read_submission(raw)
    except InvalidSubmission as exc:
        return Refusal(f"554 5.6.0 This message cannot be sent: {exc}")
    if submission.from_header[1].lower() != profile.email.lower():
        return Refusal(
            f"553 5.7.1 The From address must be your MailBeacon address, {profile.email}"
        )
    if submission.override_invalid:
        return Refusal(
            f"554 5.6.0 {TRACK_HEADER} must be one of: opens,links | opens | links | none"
        )
    if any(len(content) > MAX_BODY_CHARS for _, content in submission.bodies):
        return Refusal(f"552 5.3.4 A body of this message is over {MAX_BODY_CHARS} characters")
    recipients = _recipients(submission, envelope)
    if isinstance(recipients, Refusal):
        return recipients
    links = _links(submission, public_url)
    if len(links) > MAX_LINKS:
        return Refusal(f"554 5.6.0 At most {MAX_LINKS} different links per message")
    override = submission.override
    opens = override.opens if override else profile.last_track_opens
    wants_links = override.links if override else profile.last_track_links
    decision = _decision(profile, submission, opens, wants_links, links)
    untracked = [reason.value for reason in decision.reasons]
    if decision.track_links:
        html = next((c for k, c in submission.bodies if k == "html"), None)
        problems = find_link_problems(html, submission.text)
        untracked += link_problem_codes(problem for _, problem in problems)
    domain = profile.email.rpartition("@")[2]
    return sendqueue.NewMessage(
        user_id=user_id,
        message_id_header=submission.message_id[:250] or new_message_id(domain),
        from_address=str(Mailbox(profile.email, submission.from_header[0][:200])),
        subject=submission.subject[:MAX_SUBJECT],
        html=submission.html,
        text=submission.text,
        requested_opens=opens,
        requested_links=wants_links,
        track_opens=decision.track_opens,
        track_links=decision.track_links,
        untracked_reasons=untracked,
        recipients=recipients,
        links=tuple(links) if decision.track_links else (),
        source="smtp",
        remember_toggles=False,
    )


class _Failures:
    """Failed sign-ins per client address, in a sliding window (per worker process)."""

    def __init__(self) -> None:
        self._seen: dict[str, deque[float]] = {}

    def _recent(self, peer: str) -> deque[float]:
        times = self._seen.setdefault(peer, deque())
        while times and times[0] < time.monotonic() - FAILURE_WINDOW:
            times.popleft()
        return times

    def blocked(self, peer: str) -> bool:
        return len(self._recent(peer)) >= MAX_FAILURES

    def add(self, peer: str) -> None:
        self._recent(peer).append(time.monotonic())
        if len(self._seen) > 10_000:  # a scan from many addresses: forget the quiet ones
            horizon = time.monotonic() - FAILURE_WINDOW
            self._seen = {p: t for p, t in self._seen.items() if t and t[-1] >= horizon}


def _peer(session: Session) -> str:
    peer = session.peer
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)


class SubmissionHandler:
    """aiosmtpd handler: authenticates with app passwords, queues what is submitted."""

    def __init__(
        self,
        engine: AsyncEngine,
        cpu: CpuPool,
        public_url: str,
        on_queued: Callable[[], None] | None = None,
    ) -> None:
        self._engine = engine
        self._sessions = sessions(engine)
        self._cpu = cpu
        self._public_url = public_url.rstrip("/")
        self._on_queued = on_queued
        self._failures = _Failures()

    async def _check(self, server: SMTP, login: bytes, password: bytes) -> AuthResult:
        assert server.session is not None
        peer = _peer(server.session)
        if self._failures.blocked(peer):
            return AuthResult(
                success=False,
                handled=False,
                message="454 4.7.0 Too many failed sign-ins; try again later",
            )
        try:
            login_text, password_text = login.decode("utf-8"), password.decode("utf-8")
        except UnicodeDecodeError:
            login_text = password_text = ""
        async with self._sessions() as db, db.begin():
            user = await user_for_app_password(db, login_text, password_text)
        if user is None:
            self._failures.add(peer)
            log.info("submission: failed sign-in from %s", peer)
            return AuthResult(success=False, handled=False)  # aiosmtpd answers 535
        return AuthResult(success=True, auth_data=SignedIn(login, user.id))

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        """RFC 4616: ``authzid NUL login NUL password``, inline or after a challenge."""
        if len(args) == 1:
            blob = await server.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            try:
                blob = b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        assert isinstance(blob, bytes)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await server.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        return await self._check(server, parts[1], parts[2])

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        """The LOGIN mechanism: user name, then password, each base64."""
        if len(args) == 1:
            login = await server.challenge_auth(server.AuthLoginUsernameChallenge)
        else:
            try:
                login = b64decode(args[1].encode(), validate=True)
            except (binascii.Error, ValueError):
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        if login is MISSING:
            return AuthResult(success=False, handled=True)
        password = await server.challenge_auth(server.AuthLoginPasswordChallenge)
        if password is MISSING:
            return AuthResult(success=False, handled=True)
        assert isinstance(login, bytes) and isinstance(password, bytes)
        return await self._check(server, login, password)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if not session.authenticated:  # auth_required refuses first; never rely on one check
            return AUTH_REQUIRED
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if not session.authenticated:  # a relay attempt
            return AUTH_REQUIRED
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return f"452 4.5.3 At most {MAX_RECIPIENTS} recipients per message"
        if not is_addr_spec(address):
            return "553 5.1.3 Not an address MailBeacon can send to"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        signed_in = session.auth_data
        if not session.authenticated or not isinstance(signed_in, SignedIn):
            return AUTH_REQUIRED
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        async with self._sessions() as db:
            user = await db.get(User, signed_in.user_id)
            profile = profile_of(user) if user is not None else None
        if profile is None:
            return "554 5.7.1 This account no longer exists"
        result = await self._cpu.run(
            check_submission,
            signed_in.user_id,
            profile,
            raw,
            list(envelope.rcpt_tos),
            self._public_url,
        )
        if isinstance(result, Refusal):
            log.info("submission from user %d refused: %s", signed_in.user_id, result.reply)
            return result.reply
        message_id = await sendqueue.enqueue(
            self._engine, replace(result, raw_source=raw), datetime.now(UTC)
        )
        if self._on_queued is not None:
            self._on_queued()
        log.info("submission: message %d queued for user %d", message_id, signed_in.user_id)
        return OK_QUEUED.format(id=message_id)


class SubmissionServer:
    """The submission service: a STARTTLS port, an implicit-TLS port, or both.

    A port of None is not opened; 0 takes a free one (tests), readable after `start`.
    """

    def __init__(
        self,
        handler: SubmissionHandler,
        context: ssl.SSLContext,
        *,
        host: str = "0.0.0.0",  # noqa: S104 - mail clients connect from anywhere
        port: int | None = None,
        tls_port: int | None = None,
        hostname: str = "mailbeacon",
    ) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.tls_port = tls_port
        self._context = context
        self._hostname = hostname
        self._servers: list[asyncio.Server] = []

    def _smtp(self, loop: asyncio.AbstractEventLoop, *, implicit: bool) -> SMTP:
        return SMTP(
            self.handler,
            hostname=self._hostname,
            data_size_limit=MAX_SUBMISSION_BYTES,
            enable_SMTPUTF8=True,
            # STARTTLS port: TLS before anything but EHLO/STARTTLS/NOOP/QUIT, AUTH only after.
            tls_context=None if implicit else self._context,
            require_starttls=not implicit,
            auth_required=True,
            # On the implicit port the connection is TLS from the first byte (aiosmtpd only
            # knows about TLS it started itself, so it must not demand STARTTLS there).
            auth_require_tls=not implicit,
            loop=loop,
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()

        def factory(implicit: bool) -> Callable[[], Any]:
            def make() -> Any:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    return self._smtp(loop, implicit=implicit)

            return make

        if self.port is not None:
            server = await loop.create_server(factory(False), self.host, self.port)
            self._servers.append(server)
            self.port = server.sockets[0].getsockname()[1]
            log.info("SMTP submission (STARTTLS) on %s:%d", self.host, self.port)
        if self.tls_port is not None:
            server = await loop.create_server(
                factory(True), self.host, self.tls_port, ssl=self._context
            )
            self._servers.append(server)
            self.tls_port = server.sockets[0].getsockname()[1]
            log.info("SMTP submission (implicit TLS) on %s:%d", self.host, self.tls_port)

    async def stop(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        for server in servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
