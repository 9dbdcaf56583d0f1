"""The Password settings: changing the sign-in password.

A change signs the user out of every other session, so whoever knew the old
password loses what it let them in to.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from mailbeacon.core.policy import N_
from mailbeacon.store.accounts import hash_password, password_matches
from mailbeacon.store.db import sessions
from mailbeacon.store.tables import User
from mailbeacon.store.users import end_other_sessions
from mailbeacon.web import runtime_of
from mailbeacon.web.pages.account.common import (
    MAX_PASSWORD,
    MIN_PASSWORD,
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
