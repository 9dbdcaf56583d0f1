"""The Users settings, for administrators only: the list of users and adding one.

It is the one settings page that shows other people, which is safe because it
holds no tracking data (S7). To anyone but an administrator it does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from mailbeacon.core.addresses import InvalidAddress, parse_mailbox
from mailbeacon.core.policy import N_
from mailbeacon.store.accounts import AccountError, add_user, user_by_email
from mailbeacon.store.db import sessions
from mailbeacon.store.users import all_users
from mailbeacon.web import runtime_of
from mailbeacon.web.auth import SignedIn
from mailbeacon.web.pages.account.common import (
    MAX_PASSWORD,
    MIN_PASSWORD,
    FormText,
    Problem,
    Problems,
    checked,
    notice_for,
    redirect_done,
    require_admin,
    require_admin_csrf,
)
from mailbeacon.web.render import render

router = APIRouter(include_in_schema=False)


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
