"""Users and their API tokens."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mailbeacon.store.tables import ApiToken, User

TOKEN_PREFIX = "mbk_"  # noqa: S105 - a marker, not a secret
_hasher = PasswordHasher()


class AccountError(ValueError):
    """A user or token operation that cannot be done as asked."""


def hash_password(password: str) -> str:
    """An argon2id hash (salted, tunable, the current recommendation)."""
    return _hasher.hash(password)


def password_matches(password_hash: str, password: str) -> bool:
    """Constant-time check; a malformed stored hash never matches."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def token_digest(token: str) -> str:
    """API tokens are random and long, so a plain SHA-256 is the right hash for them."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    """Emails are matched case-insensitively."""
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
