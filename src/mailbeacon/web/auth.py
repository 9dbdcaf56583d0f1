"""Signing in: server-side sessions in an HttpOnly, SameSite cookie, and CSRF tokens.

The cookie holds a random session id; the database holds only its SHA-256,
so a leaked database does not sign anyone in. A fresh id is issued at every
sign-in (no session fixation). Every state-changing form carries the
session's CSRF token, compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from sqlalchemy import delete
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from starlette.requests import HTTPConnection

from mailbeacon.store.accounts import api_token_is_live
from mailbeacon.store.db import sessions
from mailbeacon.store.tables import User, WebSession
from mailbeacon.web.prefix import app_path

SESSION_COOKIE = "mb_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
Scope = MutableMapping[str, Any]


class LoginRequired(Exception):
    """Raised by page dependencies; the app answers with a redirect to /login."""

    def __init__(self, next_path: str = "/") -> None:
        super().__init__(next_path)
        self.next_path = next_path


class CsrfFailed(Exception):
    """A state-changing request without the session's CSRF token."""


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The user behind a request and their session's CSRF token."""

    user: User
    csrf_token: str
    session_hash: str


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def session_hash(session_id: str) -> str:
    """What the database keeps of a session id (and what `SignedIn.session_hash` holds)."""
    return _digest(session_id)


async def open_session(db: AsyncSession, user: User, lifetime: timedelta) -> str:
    """A new session for `user`; returns the cookie value (the only time it exists)."""
    session_id = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    db.add(
        WebSession(
            id_hash=_digest(session_id),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    await db.execute(delete(WebSession).where(WebSession.expires_at < now))
    await db.flush()
    return session_id


async def close_session(db: AsyncSession, session_id: str) -> None:
    await db.execute(delete(WebSession).where(WebSession.id_hash == _digest(session_id)))


async def signed_in(request: Request) -> SignedIn | None:
    """The request's live session and user, if any."""
    cached: SignedIn | None = getattr(request.state, "signed_in", None)
    if cached is not None:
        return cached
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id or len(session_id) > 100:
        return None
    engine = request.app.state.runtime.engine
    async with sessions(engine)() as db:
        web_session = await db.get(WebSession, _digest(session_id))
        if web_session is None or web_session.expires_at < datetime.now(UTC):
            return None
        user = await db.get(User, web_session.user_id)
    if user is None:
        return None
    result = SignedIn(user, web_session.csrf_token, web_session.id_hash)
    request.state.signed_in = result
    return result


async def require_user(request: Request) -> SignedIn:
    """Page dependency: the signed-in user, or a redirect to the sign-in page."""
    current = await signed_in(request)
    if current is None:
        path = app_path(request)
        if request.url.query:
            path += "?" + request.url.query
        raise LoginRequired(path)
    return current


async def has_credentials(engine: AsyncEngine, scope: Scope) -> bool:
    """Whether a request carries a live session cookie or a live API token.

    Read before the body is (see `security.BodyLimit`), so it looks only at headers.
    While the database is unreachable nobody can be recognised: False.
    """
    connection = HTTPConnection(scope)
    session_id = connection.cookies.get(SESSION_COOKIE, "")
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    try:
        async with sessions(engine)() as db:
            if session_id and len(session_id) <= 100:
                web_session = await db.get(WebSession, _digest(session_id))
                if web_session is not None and web_session.expires_at >= datetime.now(UTC):
                    return True
            if scheme.lower() == "bearer" and token:
                return await api_token_is_live(db, token.strip())
    except (SQLAlchemyError, OSError):
        return False
    return False


def csrf_ok(current: SignedIn, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(
        current.csrf_token.encode(), (submitted or "").encode()
    )


async def require_csrf(request: Request) -> SignedIn:
    """Dependency for every state-changing page request: signed in and CSRF-checked."""
    current = await require_user(request)
    submitted = request.headers.get(CSRF_HEADER)
    if submitted is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            submitted = value if isinstance(value, str) else None
    if not csrf_ok(current, submitted):
        raise CsrfFailed()
    return current


def safe_next(path: str | None) -> str:
    """Only same-site paths after sign-in: never an open redirect."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path
