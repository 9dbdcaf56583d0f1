"""The API tokens settings (B9): tokens for scripts that use the JSON API.

Only a token's digest is stored, so a new token is shown once, on the answer
to its creation, and never again. Revoking another user's token is a 404,
the same as a token that does not exist (S7).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from mailbeacon.core.addresses import has_control_characters
from mailbeacon.core.policy import N_
from mailbeacon.store.accounts import create_api_token
from mailbeacon.store.db import sessions
from mailbeacon.store.tables import User
from mailbeacon.store.users import revoke_token, tokens_of
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

MAX_TOKEN_NAME = 100


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
async def revoke(request: Request, current: CheckedUser, token_id: str) -> Response:
    row_id = id_or_404(token_id)
    async with sessions(runtime_of(request).engine)() as db, db.begin():
        if not await revoke_token(db, current.user.id, row_id):
            raise HTTPException(404)
    return redirect_done("/settings/tokens", "revoked")
