"""Users and their API tokens."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from datetime import UTC, datetime
from functools import cache

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mailbeacon.store.tables import ApiToken, User

TOKEN_PREFIX = "mbk_"  # noqa: S105 - a marker, not a secret
# For the test suite only: the cheapest argon2 parameters, so that the hundreds of
# users the tests create cost nothing. Stored hashes carry their own parameters, so
# a hash made either way verifies either way.
CHEAP_HASHES_VARIABLE = "MAILBEACON_TEST_CHEAP_HASHES"


@cache
def _hasher() -> PasswordHasher:
    """Read on first use, so a test run can choose before anything is hashed."""
    if os.environ.get(CHEAP_HASHES_VARIABLE) == "1":
        return PasswordHasher.from_parameters(profiles.CHEAPEST)
    return PasswordHasher()


class AccountError(ValueError):
    """A user or token operation that cannot be done as asked."""


def hash_password(password: str) -> str:
    """An argon2id hash (salted, tunable, the current recommendation)."""
    return _hasher().hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    """Constant-time check; a malformed stored hash never matches."""
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _unknown_user_hash() -> str:
    """A hash no password matches, made like every stored one, so checking it costs the same."""
    return hash_password(secrets.token_urlsafe(32))


def sign_in_matches(user: User | None, password: str) -> bool:
    """Whether `password` signs `user` in, taking as long for an unknown email (no user).

    Without the stand-in hash, an unknown email answered at once and a known one
    after an argon2 check: the delay told which addresses have an account.
    Blocking and slow on purpose: call it off the event loop.
    """
    if user is None:
        password_matches(_unknown_user_hash(), password)
        return False
    return password_matches(user.password_hash, password)


def token_digest(token: str) -> str:
    """API tokens are random and long, so a plain SHA-256 is the right hash for them."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    """Emails are matched case-insensitively; one with NUL (no column holds it) matches no one."""
    if "\x00" in email:
        return None
    result = await session.execute(select(User).where(func.lower(User.email) == email.lower()))
    return result.scalar_one_or_none()


async def add_user(
    session: AsyncSession, email: str, password: str, *, is_admin: bool = False
) -> User:
    """Create a user; the caller commits."""
    if len(password) < 8:
        raise AccountError("the password must be at least 8 characters long")
    if await user_by_email(session, email) is not None:
        raise AccountError(f"a user {email} already exists")
    password_hash = await asyncio.to_thread(hash_password, password)  # slow on purpose
    user = User(email=email, password_hash=password_hash, is_admin=is_admin)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # added at the same moment by someone else
        raise AccountError(f"a user {email} already exists") from exc
    return user


async def create_api_token(session: AsyncSession, user: User, name: str = "") -> str:
    """Issue a token; only its digest is kept, so this is the one time it is seen."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            user_id=user.id, name=name[:100], token_hash=token_digest(token), prefix=token[:12]
        )
    )
    await session.flush()
    return token


async def api_token_is_live(session: AsyncSession, token: str) -> bool:
    """Whether `token` is a live (unrevoked) API token; reads only, records nothing."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return False
    found = await session.scalar(
        select(ApiToken.id).where(
            ApiToken.token_hash == token_digest(token), ApiToken.revoked_at.is_(None)
        )
    )
    return found is not None


async def user_for_api_token(session: AsyncSession, token: str) -> User | None:
    """The live token's user, recording when the token was last used."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    result = await session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == token_digest(token), ApiToken.revoked_at.is_(None))
    )
    row = result.one_or_none()
    if row is None:
        return None
    api_token, user = row
    api_token.last_used_at = datetime.now(UTC)
    return user
