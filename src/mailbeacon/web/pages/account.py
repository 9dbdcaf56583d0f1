"""Pages: the user's settings (S4, B8, B9) and, for administrators, the user list.

General (tracking switches, language, time zone, name), Mailbox (the user's own
SMTP server, with a real test email), Password, API tokens and Users. Every
query is scoped to the signed-in user (S7): another user's token is a 404, and
no page lists anything of anyone else's except the admin-only user list, which
holds no tracking data. Bad input re-renders the form with a clear message and
changes nothing; a successful change redirects (so a reload does not repeat it)
to the page with a notice.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cache
from typing import Annotated
from zoneinfo import available_timezones

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from mailbeacon.core.addresses import InvalidAddress, has_control_characters, parse_mailbox
from mailbeacon.core.addresses import Mailbox as Address
from mailbeacon.core.mime import build_copy, new_message_id
from mailbeacon.core.policy import N_
from mailbeacon.mail.smtp import Delivery, SmtpTarget, deliver
from mailbeacon.runtime import Runtime
from mailbeacon.store.accounts import (
    AccountError,
    add_user,
    create_api_token,
    hash_password,
    password_matches,
    user_by_email,
)
from mailbeacon.store.db import sessions
from mailbeacon.store.mailboxes import (
    SECURITY_MODES,
    MailboxSettings,
    load_mailbox,
    save_mailbox,
)
from mailbeacon.store.tables import User
from mailbeacon.store.users import (
    all_users,
    delete_mailbox,
    end_other_sessions,
    revoke_token,
    tokens_of,
)
from mailbeacon.web.auth import SignedIn, require_csrf, require_user
from mailbeacon.web.i18n import LANGUAGES, Localizer
from mailbeacon.web.render import localizer_for, render

router = APIRouter(include_in_schema=False)

CurrentUser = Annotated[SignedIn, Depends(require_user)]
CheckedUser = Annotated[SignedIn, Depends(require_csrf)]
FormText = Annotated[str, Form()]

MIN_PASSWORD = 8
MAX_PASSWORD = 1000
MAX_DISPLAY_NAME = 200
MAX_TOKEN_NAME = 100
MAX_HOST = 253
MAX_USERNAME = 320
MAX_ID = 2**63 - 1
# A test email should answer while the person is still looking at the page.
TEST_EMAIL_TIMEOUT = 20.0
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)

# What a successful change says after its redirect; the query names one of these.
NOTICES: dict[str, str] = {
    "saved": N_("Your settings are saved."),
    "mailbox-saved": N_("Your mailbox is saved. Send a test email to check it works."),
    "mailbox-removed": N_("Your mailbox is removed. Your mail now goes through the default."),
    "password": N_("Your password is changed. You were signed out everywhere else."),
    "revoked": N_("The token is revoked. Anything still using it is refused from now on."),
    "user-added": N_("The user is added. Give them their email address and password."),
}

TEST_SUBJECT = N_("MailBeacon test email")
TEST_BODY = N_(
    "This is a test email from MailBeacon.\n\n"
    "It reached you, so MailBeacon can send mail as %(address)s through %(server)s."
)


@dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong with a field: English source text and its variables, translated when shown."""

    text: str
    values: Mapping[str, str] = field(default_factory=dict)


Problems = dict[str, Problem]


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def notice_for(done: str) -> str | None:
    """Only our own fixed texts are shown, whatever the query string says."""
    return NOTICES.get(done)


def redirect_done(path: str, notice: str) -> RedirectResponse:
    """After a change: back to the page (a reload repeats nothing), with its notice."""
    return RedirectResponse(f"{path}?done={notice}", status_code=303)


def checked(value: str) -> bool:
    """A checkbox is on when the browser sent it at all."""
    return bool(value)


# General: switches (S4), language (B8), time zone, display name


@cache
def time_zones() -> frozenset[str]:
    """The zones a user may pick; 'localtime' is the server's own zone, meaningless to them."""
    return frozenset(available_timezones() - {"localtime"})


@cache
def time_zone_groups() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Zones grouped by region ('Europe', 'America', ...); single names such as UTC come last."""
    groups: dict[str, list[str]] = {}
    for name in sorted(time_zones()):
        region = name.split("/", 1)[0] if "/" in name else ""
        groups.setdefault(region, []).append(name)
    other = groups.pop("", [])
    return (*((region, tuple(names)) for region, names in groups.items()), ("", tuple(other)))


@dataclass(frozen=True, slots=True)
class GeneralForm:
    """The general settings as shown in, and submitted from, the form."""

    display_name: str
    language: str
    timezone: str
    open_tracking: bool
    link_tracking: bool
    notify_tracking: bool

    @classmethod
    def of(cls, user: User) -> GeneralForm:
        return cls(
            display_name=user.display_name,
            language=user.locale,
            timezone=user.timezone,
            open_tracking=user.open_tracking,
            link_tracking=user.link_tracking,
            notify_tracking=user.notify_tracking,
        )


def display_name_problem(email: str, name: str) -> Problem | None:
    """The name goes into the From header of every email, so it must survive one intact."""
    if len(name) > MAX_DISPLAY_NAME:
        return Problem(N_("Use at most %(max)s characters."), {"max": str(MAX_DISPLAY_NAME)})
    if has_control_characters(name):
        return Problem(N_("The name cannot contain line breaks or control characters."))
    try:
        parsed = parse_mailbox(str(Address(email, name)))
    except InvalidAddress:
        parsed = None
    if parsed is None or parsed.name != name:
        return Problem(N_("This name cannot be used as a sender name in email."))
    return None


def check_general(form: GeneralForm, email: str) -> Problems:
    problems: Problems = {}
    name_problem = display_name_problem(email, form.display_name)
    if name_problem is not None:
        problems["display_name"] = name_problem
    if form.language not in LANGUAGES:
        problems["language"] = Problem(N_("Choose one of the languages in the list."))
    if form.timezone not in time_zones():
        problems["timezone"] = Problem(N_("Choose a time zone from the list."))
    return problems


async def general_page(
    request: Request,
    form: GeneralForm,
    *,
    problems: Problems | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    return await render(
        request,
        "account/general.html",
        {
            "form": form,
            "errors": problems or {},
            "notice": notice,
            "zone_groups": time_zone_groups(),
        },
        status_code=400 if problems else 200,
    )


@router.get("/settings")
async def general(request: Request, current: CurrentUser, done: str = "") -> HTMLResponse:
    return await general_page(request, GeneralForm.of(current.user), notice=notice_for(done))


@router.post("/settings")
async def save_general(
    request: Request,
    current: CheckedUser,
    display_name: FormText = "",
    language: FormText = "",
    timezone: FormText = "",
    open_tracking: FormText = "",
    link_tracking: FormText = "",
    notify_tracking: FormText = "",
) -> Response:
    form = GeneralForm(
        display_name=display_name.strip(),
        language=language,
        timezone=timezone,
        open_tracking=checked(open_tracking),
        link_tracking=checked(link_tracking),
        notify_tracking=checked(notify_tracking),
    )
    problems = check_general(form, current.user.email)
    if problems:
        return await general_page(request, form, problems=problems)
    async with sessions(runtime_of(request).engine)() as db, db.begin():
        user = await db.get_one(User, current.user.id)
        user.display_name = form.display_name
        user.locale = form.language
        user.timezone = form.timezone
        user.open_tracking = form.open_tracking
        user.link_tracking = form.link_tracking
        user.notify_tracking = form.notify_tracking
    return redirect_done("/settings", "saved")


# Mailbox: the user's own SMTP server, with the password encrypted at rest


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
    """1-65535 written in plain digits, else None."""
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
    """What the mail server answered to the test email: empty error means accepted."""

    address: str
    error: str


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
) -> HTMLResponse:
    runtime = runtime_of(request)
    mailbox = await own_mailbox(runtime, current.user.id)
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
        },
        status_code=400 if problems else 200,
    )


@router.get("/settings/mailbox")
async def mailbox(request: Request, current: CurrentUser, done: str = "") -> HTMLResponse:
    return await mailbox_page(request, current, notice=notice_for(done))


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
    """Send through exactly the route real mail takes and report what the server said."""
    target: SmtpTarget = replace(await runtime.smtp_target_for(user), timeout=TEST_EMAIL_TIMEOUT)
    delivery = self_addressed_email(user, l10n, f"{target.host}:{target.port}")
    results = await deliver(target, [delivery])
    return TestOutcome(user.email, results[0].error if results else "")


@router.post("/settings/mailbox/test")
async def send_mailbox_test(request: Request, current: CheckedUser) -> HTMLResponse:
    outcome = await send_test_email(
        runtime_of(request), current.user, localizer_for(request, current)
    )
    return await mailbox_page(request, current, test=outcome)


# Password


def check_new_password(new: str, repeat: str) -> Problems:
    if len(new) < MIN_PASSWORD:
        return {
            "new_password": Problem(
                N_("Use at least %(min)s characters."), {"min": str(MIN_PASSWORD)}
            )
        }
    if len(new) > MAX_PASSWORD:
        return {
            "new_password": Problem(
                N_("Use at most %(max)s characters."), {"max": str(MAX_PASSWORD)}
            )
        }
    if new != repeat:
        return {"repeat_password": Problem(N_("The two new passwords are not the same."))}
    return {}


async def password_page(
    request: Request, *, problems: Problems | None = None, notice: str | None = None
) -> HTMLResponse:
    return await render(
        request,
        "account/password.html",
        {"errors": problems or {}, "notice": notice, "min_password": MIN_PASSWORD},
        status_code=400 if problems else 200,
    )


@router.get("/settings/password")
async def password(request: Request, current: CurrentUser, done: str = "") -> HTMLResponse:
    return await password_page(request, notice=notice_for(done))


@router.post("/settings/password")
async def change_password(
    request: Request,
    current: CheckedUser,
    current_password: FormText = "",
    new_password: FormText = "",
    repeat_password: FormText = "",
) -> Response:
    # argon2 is slow on purpose; off the event loop, the collector keeps answering meanwhile.
    matches = len(current_password) <= MAX_PASSWORD and await asyncio.to_thread(
        password_matches, current.user.password_hash, current_password
    )
    if not matches:
        problem = Problem(N_("That is not your current password."))
        return await password_page(request, problems={"current_password": problem})
    problems = check_new_password(new_password, repeat_password)
    if problems:
        return await password_page(request, problems=problems)
    new_hash = await asyncio.to_thread(hash_password, new_password)
    async with sessions(runtime_of(request).engine)() as db, db.begin():
        user = await db.get_one(User, current.user.id)
        user.password_hash = new_hash
        await end_other_sessions(db, user.id, current.session_hash)
    return redirect_done("/settings/password", "password")


# API tokens (B9)


def token_name_problem(name: str) -> Problem | None:
    if not name:
        return Problem(N_("Give the token a name, such as the script that will use it."))
    if len(name) > MAX_TOKEN_NAME or has_control_characters(name):
        return Problem(
            N_("Use at most %(max)s characters, without line breaks."),
            {"max": str(MAX_TOKEN_NAME)},
        )
    return None


async def tokens_page(
    request: Request,
    current: SignedIn,
    *,
    new_token: str = "",
    name: str = "",
    problems: Problems | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    async with sessions(runtime_of(request).engine)() as db:
        tokens = await tokens_of(db, current.user.id)
    # A page showing a live token must not be kept by the browser or any cache.
    headers = {"Cache-Control": "no-store"} if new_token else None
    return await render(
        request,
        "account/tokens.html",
        {
            "tokens": tokens,
            "new_token": new_token,
            "name": name,
            "errors": problems or {},
            "notice": notice,
        },
        status_code=400 if problems else 200,
        headers=headers,
    )


@router.get("/settings/tokens")
async def tokens(request: Request, current: CurrentUser, done: str = "") -> HTMLResponse:
    return await tokens_page(request, current, notice=notice_for(done))


@router.post("/settings/tokens")
async def create_token(request: Request, current: CheckedUser, name: FormText = "") -> Response:
    name = name.strip()
    problem = token_name_problem(name)
    if problem is not None:
        return await tokens_page(request, current, name=name, problems={"name": problem})
    async with sessions(runtime_of(request).engine)() as db, db.begin():
        user = await db.get_one(User, current.user.id)
        token = await create_api_token(db, user, name)
    return await tokens_page(request, current, new_token=token)


@router.post("/settings/tokens/{token_id}/revoke")
async def revoke(request: Request, current: CheckedUser, token_id: int) -> Response:
    if not 0 < token_id <= MAX_ID:
        raise HTTPException(404)
    async with sessions(runtime_of(request).engine)() as db, db.begin():
        if not await revoke_token(db, current.user.id, token_id):
            raise HTTPException(404)
    return redirect_done("/settings/tokens", "revoked")


# Users (administrators only)


async def require_admin(request: Request) -> SignedIn:
    """Administrators only; anyone else sees no such page (404, not 403)."""
    current = await require_user(request)
    if not current.user.is_admin:
        raise HTTPException(404)
    return current


async def require_admin_csrf(request: Request) -> SignedIn:
    await require_admin(request)
    return await require_csrf(request)


@dataclass(frozen=True, slots=True)
class NewUserForm:
    """The add-user form as submitted; the password never goes back to the page."""

    email: str = ""
    is_admin: bool = False


async def check_new_user(db: AsyncSession, email: str, password: str) -> Problems:
    problems: Problems = {}
    try:
        box = parse_mailbox(email)
    except InvalidAddress:
        box = None
    if box is None or box.name or box.address != email:
        problems["email"] = Problem(N_("Enter one email address, such as anna@example.com."))
    elif await user_by_email(db, email) is not None:
        problems["email"] = Problem(N_("There is already a user with this email address."))
    if len(password) < MIN_PASSWORD:
        problems["password"] = Problem(
            N_("Use at least %(min)s characters."), {"min": str(MIN_PASSWORD)}
        )
    elif len(password) > MAX_PASSWORD:
        problems["password"] = Problem(
            N_("Use at most %(max)s characters."), {"max": str(MAX_PASSWORD)}
        )
    return problems


async def users_page(
    request: Request,
    *,
    form: NewUserForm | None = None,
    problems: Problems | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    async with sessions(runtime_of(request).engine)() as db:
        users = await all_users(db)
    return await render(
        request,
        "account/users.html",
        {
            "users": users,
            "form": form or NewUserForm(),
            "errors": problems or {},
            "notice": notice,
            "min_password": MIN_PASSWORD,
        },
        status_code=400 if problems else 200,
    )


@router.get("/settings/users")
async def users(
    request: Request, current: Annotated[SignedIn, Depends(require_admin)], done: str = ""
) -> HTMLResponse:
    return await users_page(request, notice=notice_for(done))


@router.post("/settings/users")
async def create_user(
    request: Request,
    current: Annotated[SignedIn, Depends(require_admin_csrf)],
    email: FormText = "",
    password: FormText = "",
    is_admin: FormText = "",
) -> Response:
    form = NewUserForm(email=email.strip(), is_admin=checked(is_admin))
    async with sessions(runtime_of(request).engine)() as db, db.begin():
        problems = await check_new_user(db, form.email, password)
        if not problems:
            try:
                await add_user(db, form.email, password, is_admin=form.is_admin)
            except AccountError:
                problems = {"email": Problem(N_("This user cannot be added. Please try again."))}
    if problems:
        return await users_page(request, form=form, problems=problems)
    return redirect_done("/settings/users", "user-added")
