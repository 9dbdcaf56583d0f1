"""The Mailbox settings: the user's own SMTP server, with a real test email, and the same
mailbox over IMAP (S12, B2), with "Test connection".

Passwords are encrypted at rest and never go back to the page. The test email
takes exactly the route real mail takes, and "Test connection" signs in to the
IMAP server exactly as the worker will (mail.imap, in a thread: IMAP is
blocking), so a wrong setting shows up here, while the user is looking, rather
than as a failed send or a missing Sent copy later.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import socket
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import aiosmtplib
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from mailbeacon.core.addresses import Mailbox as Address
from mailbeacon.core.addresses import has_control_characters
from mailbeacon.core.mime import build_copy, new_message_id
from mailbeacon.core.policy import N_
from mailbeacon.mail.destinations import (
    RefusedDestination,
    UnreachableDestination,
    connect_checked,
)
from mailbeacon.mail.imap import DEFAULT_PORTS, ImapTarget, ProbeResult, probe, remember_outcome
from mailbeacon.mail.smtp import Delivery, SmtpTarget
from mailbeacon.runtime import Runtime
from mailbeacon.store import sentcopies
from mailbeacon.store.db import sessions
from mailbeacon.store.mailboxes import (
    SECURITY_MODES,
    ImapSettings,
    MailboxSettings,
    clear_imap,
    load_mailbox,
    save_imap,
    save_mailbox,
)
from mailbeacon.store.mailboxes import imap_password as stored_imap_password
from mailbeacon.store.replies import inbox_state
from mailbeacon.store.tables import User
from mailbeacon.store.users import delete_mailbox
from mailbeacon.web import runtime_of
from mailbeacon.web.auth import SignedIn
from mailbeacon.web.i18n import Localizer
from mailbeacon.web.pages.account.common import (
    MAX_PASSWORD,
    CheckedUser,
    CurrentUser,
    FormText,
    Problem,
    Problems,
    checked,
    notice_for,
    redirect_done,
)
from mailbeacon.web.render import localizer_for, render

router = APIRouter(include_in_schema=False)

MAX_HOST = 253
MAX_USERNAME = 320
# A test email should answer while the person is still looking at the page.
TEST_EMAIL_TIMEOUT = 20.0
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)

TEST_SUBJECT = N_("MailBeacon test email")
TEST_BODY = N_(
    "This is a test email from MailBeacon.\n\n"
    "It reached you, so MailBeacon can send mail as %(address)s through %(server)s."
)


@dataclass(frozen=True, slots=True)
class MailboxForm:
    """The mailbox form as submitted; the password never goes back to the page."""

    host: str = ""
    port: str = "587"
    security: str = "starttls"
    username: str = ""
    password: str = ""
    clear_password: bool = False

    @classmethod
    def of(cls, mailbox: MailboxSettings | None) -> MailboxForm:
        if mailbox is None:
            return cls()
        return cls(mailbox.host, str(mailbox.port), mailbox.security, mailbox.username)


def clean_host(host: str) -> str:
    """A host as the SMTP client wants it: IPv6 literals without their brackets."""
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


def host_is_valid(host: str) -> bool:
    if not host or len(host) > MAX_HOST:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOSTNAME.match(host))
    return True


def port_number(port: str) -> int | None:
    """1-65535 written in plain digits, else None.

    Plain ASCII digits only: int() alone would also take '+25', '2_5' or digits of other scripts.
    """
    port = port.strip()
    if not port.isascii() or not port.isdigit() or len(port) > 5:
        return None
    number = int(port)
    return number if 1 <= number <= 65535 else None


def check_mailbox(form: MailboxForm) -> Problems:
    problems: Problems = {}
    if not host_is_valid(form.host):
        problems["host"] = Problem(
            N_("Enter a host name such as smtp.example.com, or an IP address, without spaces.")
        )
    if port_number(form.port) is None:
        problems["port"] = Problem(N_("Enter a port number from 1 to 65535."))
    if form.security not in SECURITY_MODES:
        problems["security"] = Problem(N_("Choose none, STARTTLS or TLS."))
    if len(form.username) > MAX_USERNAME or has_control_characters(form.username):
        problems["username"] = Problem(
            N_("Use at most %(max)s characters, without line breaks."), {"max": str(MAX_USERNAME)}
        )
    if len(form.password) > MAX_PASSWORD or has_control_characters(form.password):
        problems["password"] = Problem(
            N_("Use at most %(max)s characters, without line breaks."), {"max": str(MAX_PASSWORD)}
        )
    return problems


@dataclass(frozen=True, slots=True)
class MailRoute:
    """Where the user's mail goes, as the page tells it: never with credentials."""

    kind: str  # mailbox, server or outbox
    host: str
    port: int


def mail_route(runtime: Runtime, mailbox: MailboxSettings | None) -> MailRoute:
    if mailbox is not None:
        return MailRoute("mailbox", mailbox.host, mailbox.port)
    target = runtime.default_smtp_target()
    return MailRoute("outbox" if runtime.outbox is not None else "server", target.host, target.port)


@dataclass(frozen=True, slots=True)
class TestOutcome:
    """How the test email went: empty error means accepted, else one of the texts below."""

    address: str
    error: str


# What a failed test email says. Never the other side's words (a banner or a reply
# could come from any internal service), and one text for every way a connection
# fails, so the page cannot be used to map which ports are open where.
NOT_ALLOWED = N_(
    "MailBeacon does not connect to this address: it is on this machine or a private "
    "network. Use your mail provider's public server name, or ask your administrator."
)
UNREACHABLE = N_(
    "No mail server could be reached there. Check the host name, the port and the security."
)
LOGIN_FAILED = N_("The mail server did not accept the user name and password.")
NOT_ACCEPTED = N_(
    "The mail server did not accept the test email. Check that this account may send "
    "as your address."
)


async def own_mailbox(runtime: Runtime, user_id: int) -> MailboxSettings | None:
    async with sessions(runtime.engine)() as db:
        mailbox = await load_mailbox(db, user_id)
    if mailbox is None:
        return None
    return MailboxSettings(
        host=mailbox.host,
        port=mailbox.port,
        security=mailbox.security,
        username=mailbox.username,
        has_password=bool(mailbox.password_encrypted),
    )


async def mailbox_page(
    request: Request,
    current: SignedIn,
    *,
    form: MailboxForm | None = None,
    problems: Problems | None = None,
    notice: str | None = None,
    test: TestOutcome | None = None,
    imap_form: ImapForm | None = None,
    imap_problems: Problems | None = None,
    imap_test: ProbeResult | None = None,
) -> HTMLResponse:
    runtime = runtime_of(request)
    mailbox = await own_mailbox(runtime, current.user.id)
    imap = await own_imap(runtime, current.user.id)
    async with sessions(runtime.engine)() as db:  # B11: the inbox watch, shown by its partial
        inbox_watch = await inbox_state(db, current.user.id)
    return await render(
        request,
        "account/mailbox.html",
        {
            "mailbox": mailbox,
            "route": mail_route(runtime, mailbox),
            "form": form or MailboxForm.of(mailbox),
            "security_modes": SECURITY_MODES,
            "errors": problems or {},
            "notice": notice,
            "test": test,
            "imap": imap,
            "imap_form": imap_form or ImapForm.of(imap),
            "imap_errors": imap_problems or {},
            "imap_test": imap_test,
            "inbox_watch": inbox_watch,
        },
        status_code=400 if problems or imap_problems else 200,
    )


@router.get("/settings/mailbox")
async def mailbox(request: Request, current: CurrentUser, done: str = "") -> HTMLResponse:
    return await mailbox_page(request, current, notice=notice_for(done) or IMAP_NOTICES.get(done))


@router.post("/settings/mailbox")
async def save_own_mailbox(
    request: Request,
    current: CheckedUser,
    host: FormText = "",
    port: FormText = "",
    security: FormText = "",
    username: FormText = "",
    password: FormText = "",
    clear_password: FormText = "",
) -> Response:
    form = MailboxForm(
        host=clean_host(host),
        port=port.strip(),
        security=security,
        username=username.strip(),
        password=password,
        clear_password=checked(clear_password),
    )
    problems = check_mailbox(form)
    if problems:
        return await mailbox_page(
            request, current, form=replace(form, password=""), problems=problems
        )
    runtime = runtime_of(request)
    new_password = "" if form.clear_password else (form.password or None)
    async with sessions(runtime.engine)() as db, db.begin():
        await save_mailbox(
            db,
            runtime.fernet,
            current.user.id,
            host=form.host,
            port=port_number(form.port) or 0,
            security=form.security,
            username=form.username,
            password=new_password,
        )
    return redirect_done("/settings/mailbox", "mailbox-saved")


@router.post("/settings/mailbox/remove")
async def remove_own_mailbox(request: Request, current: CheckedUser) -> Response:
    async with sessions(runtime_of(request).engine)() as db, db.begin():
        await delete_mailbox(db, current.user.id)
    return redirect_done("/settings/mailbox", "mailbox-removed")


def self_addressed_email(user: User, l10n: Localizer, server: str) -> Delivery:
    """A plain-text email from the user to the user: nothing in it is tracked."""
    me = Address(user.email, user.display_name)
    message = build_copy(
        sender=me,
        to=(me,),
        cc=(),
        subject=l10n.gettext(TEST_SUBJECT),
        html=None,
        text=l10n.gettext(TEST_BODY, address=user.email, server=server),
        message_id=new_message_id(user.email.rpartition("@")[2]),
        date=datetime.now(UTC),
    )
    return Delivery(user.email, user.email, message)


async def send_test_email(runtime: Runtime, user: User, l10n: Localizer) -> TestOutcome:
    """Send through the route real mail takes and say, generically, how it went.

    The user's own mailbox must be on a public address (see `mail.destinations`)
    unless the operator allows private ones; the server's default route is the
    operator's own choice and is used as it is.
    """
    target: SmtpTarget = replace(await runtime.smtp_target_for(user), timeout=TEST_EMAIL_TIMEOUT)
    own = await own_mailbox(runtime, user.id) is not None
    delivery = self_addressed_email(user, l10n, f"{target.host}:{target.port}")
    try:
        sock = await connect_checked(
            target.host,
            target.port,
            allow_private=runtime.settings.smtp_allow_private or not own,
            connect_seconds=TEST_EMAIL_TIMEOUT,
        )
    except RefusedDestination:
        return TestOutcome(user.email, NOT_ALLOWED)
    except UnreachableDestination:
        return TestOutcome(user.email, UNREACHABLE)
    return TestOutcome(user.email, await _hand_over(target, sock, delivery))


async def _hand_over(target: SmtpTarget, sock: socket.socket, delivery: Delivery) -> str:
    """Deliver over the already connected (checked) socket; '' or a generic error text."""
    client = aiosmtplib.SMTP(
        hostname=target.host,  # what TLS verifies, though the socket is already connected
        sock=sock,
        use_tls=target.security == "tls",
        start_tls=target.security == "starttls",
        username=target.username or None,
        password=target.password or None,
        timeout=target.timeout,
    )
    try:
        try:
            await client.connect()
        except aiosmtplib.SMTPAuthenticationError:
            return LOGIN_FAILED
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            return UNREACHABLE
        try:
            errors, _ = await client.send_message(
                delivery.message, sender=delivery.envelope_from, recipients=[delivery.recipient]
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            return NOT_ACCEPTED
        with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
            await client.quit()
        return NOT_ACCEPTED if errors else ""
    finally:
        client.close()
        sock.close()


@router.post("/settings/mailbox/test")
async def send_mailbox_test(request: Request, current: CheckedUser) -> HTMLResponse:
    outcome = await send_test_email(
        runtime_of(request), current.user, localizer_for(request, current)
    )
    return await mailbox_page(request, current, test=outcome)


# --- IMAP: the same mailbox, for the clean Sent copy (and replies) ----------------------

MAX_FOLDER = 255
IMAP_NOTICES = {
    "imap-saved": N_("Your IMAP settings are saved. Test the connection to see what was found."),
    "imap-removed": N_("Your IMAP settings are removed. Sent mail is no longer copied to Sent."),
}
# How far back saving the IMAP settings retries Sent copies that failed.
RETRY_FAILED_WITHIN = timedelta(days=7)
NEEDS_MAILBOX = N_("Save your own mail server (SMTP) first.")


@dataclass(frozen=True, slots=True)
class ImapForm:
    """The IMAP form as submitted; the password never goes back to the page."""

    host: str = ""
    port: str = "993"
    security: str = "tls"
    username: str = ""
    password: str = ""
    clear_password: bool = False
    sent_folder: str = ""
    inbox_folder: str = ""

    @classmethod
    def of(cls, imap: ImapSettings | None) -> ImapForm:
        if imap is None:
            return cls()
        return cls(
            imap.host,
            str(imap.port),
            imap.security,
            imap.username,
            sent_folder=imap.sent_folder,
            inbox_folder=imap.inbox_folder,
        )


def check_imap(form: ImapForm) -> Problems:
    """The SMTP form's rules for host, port, security and credentials, and folder names.

    Keys are the IMAP form's field names (imap_host, ...): both forms are on one page.
    """
    smtp_like = MailboxForm(
        form.host, form.port, form.security, form.username, form.password, form.clear_password
    )
    problems = {f"imap_{name}": problem for name, problem in check_mailbox(smtp_like).items()}
    if "imap_host" in problems:
        problems["imap_host"] = Problem(
            N_("Enter a host name such as imap.example.com, or an IP address, without spaces.")
        )
    for name in ("sent_folder", "inbox_folder"):
        value: str = getattr(form, name)
        if len(value) > MAX_FOLDER or has_control_characters(value):
            problems[name] = Problem(
                N_("Use at most %(max)s characters, without line breaks."),
                {"max": str(MAX_FOLDER)},
            )
    return problems


async def own_imap(runtime: Runtime, user_id: int) -> ImapSettings | None:
    async with sessions(runtime.engine)() as db:
        mailbox = await load_mailbox(db, user_id)
    return None if mailbox is None else ImapSettings.of(mailbox)


@router.post("/settings/mailbox/imap")
async def save_own_imap(
    request: Request,
    current: CheckedUser,
    imap_host: FormText = "",
    imap_port: FormText = "",
    imap_security: FormText = "",
    imap_username: FormText = "",
    imap_password: FormText = "",
    imap_clear_password: FormText = "",
    sent_folder: FormText = "",
    inbox_folder: FormText = "",
) -> Response:
    form = ImapForm(
        host=clean_host(imap_host),
        port=imap_port.strip(),
        security=imap_security,
        username=imap_username.strip(),
        password=imap_password,
        clear_password=checked(imap_clear_password),
        sent_folder=sent_folder.strip(),
        inbox_folder=inbox_folder.strip(),
    )
    problems = check_imap(form)
    runtime = runtime_of(request)
    if not problems and await own_mailbox(runtime, current.user.id) is None:
        problems = {"imap_host": Problem(NEEDS_MAILBOX)}
    if problems:
        return await mailbox_page(
            request, current, imap_form=replace(form, password=""), imap_problems=problems
        )
    new_password = "" if form.clear_password else (form.password or None)
    async with sessions(runtime.engine)() as db, db.begin():
        await save_imap(
            db,
            runtime.fernet,
            current.user.id,
            host=form.host,
            port=port_number(form.port) or DEFAULT_PORTS[form.security],
            security=form.security,
            username=form.username,
            password=new_password,
            sent_folder=form.sent_folder,
            inbox_folder=form.inbox_folder,
        )
    # A wrong setting may be why recent Sent copies failed: the worker tries them again.
    now = datetime.now(UTC)
    await sentcopies.retry_failed(runtime.engine, current.user.id, now - RETRY_FAILED_WITHIN, now)
    return redirect_done("/settings/mailbox", "imap-saved")


@router.post("/settings/mailbox/imap/remove")
async def remove_own_imap(request: Request, current: CheckedUser) -> Response:
    async with sessions(runtime_of(request).engine)() as db, db.begin():
        await clear_imap(db, current.user.id)
    return redirect_done("/settings/mailbox", "imap-removed")


async def check_imap_connection(runtime: Runtime, user_id: int) -> ProbeResult | None:
    """Sign in with the saved settings as the worker will; None when IMAP is not set up.

    The outcome is remembered, so Settings keeps showing it (as it shows the worker's).
    """
    async with sessions(runtime.engine)() as db:
        mailbox = await load_mailbox(db, user_id)
    imap = None if mailbox is None else ImapSettings.of(mailbox)
    if mailbox is None or imap is None or imap.security not in SECURITY_MODES:
        return None
    target = ImapTarget(
        host=imap.host,
        port=imap.port,
        security=imap.security,  # type: ignore[arg-type]
        username=imap.username,
        password=stored_imap_password(runtime.fernet, mailbox),
        sent_folder=imap.sent_folder,
        inbox_folder=imap.inbox_folder,
        allow_private=runtime.settings.smtp_allow_private,
        timeout=TEST_EMAIL_TIMEOUT,
    )
    found = await asyncio.to_thread(probe, target)
    await remember_outcome(runtime.engine, user_id, found.error)
    return found


@router.post("/settings/mailbox/imap/test")
async def imap_connection_test(request: Request, current: CheckedUser) -> HTMLResponse:
    found = await check_imap_connection(runtime_of(request), current.user.id)
    return await mailbox_page(request, current, imap_test=found)
