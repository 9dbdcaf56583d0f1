"""Signing in and out."""

from __future__ import annotations

import asyncio
import hmac
import secrets
from datetime import timedelta
from math import ceil
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mailbeacon.core.hits import truncate_ip
from mailbeacon.store.accounts import sign_in_matches, user_by_email
from mailbeacon.store.db import sessions
from mailbeacon.web.auth import (
    SESSION_COOKIE,
    SignedIn,
    close_session,
    open_session,
    require_csrf,
    safe_next,
    session_hash,
    signed_in,
)
from mailbeacon.web.devices import note_device
from mailbeacon.web.i18n import negotiate, time_zones
from mailbeacon.web.render import render
from mailbeacon.web.throttle import LoginThrottle

router = APIRouter(include_in_schema=False)
LOGIN_CSRF_COOKIE = "mb_login_csrf"


@router.get("/")
async def home(request: Request) -> Response:
    if await signed_in(request) is None:
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse("/mail", status_code=303)


async def _login_page(
    request: Request,
    next_path: str,
    error: str = "",
    email: str = "",
    status_code: int = 200,
    minutes: int = 0,
) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = await render(
        request,
        "auth/login.html",
        {
            "next": next_path,
            "error": error,
            "email": email,
            "login_csrf": token,
            "minutes": minutes,
        },
        status_code=status_code,
        headers={"Retry-After": str(minutes * 60)} if minutes else None,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.app.state.runtime.settings.secure_cookies,
        path="/login",
    )
    return response


@router.get("/login")
async def login_form(request: Request, next: str = "/") -> Response:
    if await signed_in(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return await _login_page(request, safe_next(next))


@router.post("/login")
async def login(
    request: Request,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
    login_csrf: Annotated[str, Form(max_length=100)] = "",
    browser_timezone: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    runtime = request.app.state.runtime
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), login_csrf.encode()):
        return await _login_page(request, safe_next(next), "expired", email, 400)
    throttle: LoginThrottle = request.app.state.login_throttle
    network = truncate_ip(request.client.host) if request.client else ""
    wait = throttle.wait_seconds(network, email)
    if wait > 0:
        return await _login_page(
            request,
            safe_next(next),
            "throttled",
            email,
            429,
            minutes=max(1, ceil(wait / 60)),
        )
    async with sessions(runtime.engine)() as db, db.begin():
        user = await user_by_email(db, email.strip())
        # argon2 is deliberately slow: off the event loop, which also answers pixels.
        # An unknown email is checked against a stand-in hash: the same delay either way.
        matches = await asyncio.to_thread(sign_in_matches, user, password)
        if user is None or not matches:
            throttle.failed(network, email)
            return await _login_page(request, safe_next(next), "wrong", email, 401)
        throttle.succeeded(network, email)
        if not user.timezone_chosen and browser_timezone in time_zones():
            user.timezone = browser_timezone
        browser_languages = request.headers.get("accept-language", "")
        if not user.locale_chosen and browser_languages.strip():
            user.locale = negotiate(browser_languages)  # the language they signed in with
        old = request.cookies.get(SESSION_COOKIE)
        if old:
            await close_session(db, old)
        lifetime = timedelta(days=runtime.settings.session_days)
        session_id = await open_session(db, user, lifetime)
        user_id = user.id
    # The browser just signed in is the user's own: its opens are "you" from now on (B2).
    await note_device(request, user_id, session_hash(session_id), force=True)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=int(lifetime.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=runtime.settings.secure_cookies,
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request, current: Annotated[SignedIn, Depends(require_csrf)]) -> Response:
    async with sessions(request.app.state.runtime.engine)() as db, db.begin():
        await close_session(db, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
