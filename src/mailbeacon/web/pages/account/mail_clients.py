"""The Mail clients settings (B12): app passwords for SMTP submission, and what to type.

A mail client (Outlook, Apple Mail, Thunderbird) sends through MailBeacon's
submission service with the user's email address and an app password made
here. Only the password's argon2 hash is kept, so a new one is shown once, on
the answer to its creation. The page also says exactly what to enter in the
client: server, port, security and user name, read from the running settings.
Revoking another user's password is a 404, like one that does not exist (S7).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from mailbeacon.core.addresses import has_control_characters
from mailbeacon.core.policy import N_
from mailbeacon.core.submitted import TRACK_HEADER
from mailbeacon.settings import Settings
from mailbeacon.store.app_passwords import (
    MAX_NAME,
    app_passwords_of,
    create_app_password,
    revoke_app_password,
)
from mailbeacon.store.db import sessions
from mailbeacon.web import runtime_of
from mailbeacon.web.auth import SignedIn
from mailbeacon.web.inputs import id_or_404
from mailbeacon.web.pages.account.common import (
    CheckedUser,
    CurrentUser,
    FormText,
    Problem,
    Problems,
    notice_for,
    redirect_done,
)
from mailbeacon.web.render import render

router = APIRouter(include_in_schema=False)
PATH = "/settings/mail-clients"


@dataclass(frozen=True, slots=True)
class Connection:
    """One way to connect: a port and its security, as mail clients name it."""

    port: int
    security: str  # "STARTTLS" or "SSL/TLS": the words in the clients' own menus


def connections(settings: Settings) -> list[Connection]:
    """The ports the submission service offers on this server (empty: it is off)."""
    found = []
    if settings.submission_port:
        found.append(Connection(settings.submission_port, "STARTTLS"))
    if settings.submission_tls_port:
        found.append(Connection(settings.submission_tls_port, "SSL/TLS"))
    return found


def name_problem(name: str) -> Problem | None:
    if not name:
        return Problem(N_("Give the password a name, such as the mail client that will use it."))
    if len(name) > MAX_NAME or has_control_characters(name):
        return Problem(
            N_("Use at most %(max)s characters, without line breaks."), {"max": str(MAX_NAME)}
        )
    return None


async def mail_clients_page(
    request: Request,
    current: SignedIn,
    *,
    new_password: str = "",
    name: str = "",
    problems: Problems | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    runtime = runtime_of(request)
    async with sessions(runtime.engine)() as db:
        passwords = await app_passwords_of(db, current.user.id)
    # A page showing a live password must not be kept by the browser or any cache.
    headers = {"Cache-Control": "no-store"} if new_password else None
    return await render(
        request,
        "account/mail_clients.html",
        {
            "passwords": passwords,
            "new_password": new_password,
            "name": name,
            "errors": problems or {},
            "notice": notice,
            "server_name": runtime.settings.submission_name,
            "connections": connections(runtime.settings),
            "track_header": TRACK_HEADER,
        },
        status_code=400 if problems else 200,
        headers=headers,
    )


@router.get(PATH)
async def mail_clients(request: Request, current: CurrentUser, done: str = "") -> HTMLResponse:
    return await mail_clients_page(request, current, notice=notice_for(done))


@router.post(PATH)
async def create(request: Request, current: CheckedUser, name: FormText = "") -> Response:
    name = name.strip()
    problem = name_problem(name)
    if problem is not None:
        return await mail_clients_page(request, current, name=name, problems={"name": problem})
    async with sessions(runtime_of(request).engine)() as db, db.begin():
        password = await create_app_password(db, current.user.id, name)
    return await mail_clients_page(request, current, new_password=password)


@router.post(PATH + "/{password_id}/revoke")
async def revoke(request: Request, current: CheckedUser, password_id: str) -> Response:
    row_id = id_or_404(password_id)
    async with sessions(runtime_of(request).engine)() as db, db.begin():
        if not await revoke_app_password(db, current.user.id, row_id):
            raise HTTPException(404)
    return redirect_done(PATH, "app-password-revoked")
