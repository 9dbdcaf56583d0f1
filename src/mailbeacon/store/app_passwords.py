"""App passwords: how a mail client signs in to the SMTP submission service (B12).

A mail client keeps its password and sends it in every session, so it must not
be the user's sign-in password: each client gets its own, made here, shown
once, revocable alone. It is random (80 bits from an alphabet without look-alike
characters, in four groups of four for typing), and stored as an argon2 hash
like sign-in passwords, because a mail client's settings file is where it will
leak from. Its first group is kept in clear as `prefix`: shown in the list so
the user can tell passwords apart, and used to pick the one hash to verify.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailbeacon.store.accounts import (
    hash_password,
    password_matches,
    sign_in_matches,
    user_by_email,
)
from mailbeacon.store.tables import AppPassword, User

ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # 32 symbols: no l, o, 0, 1
GROUPS = 4
GROUP_LENGTH = 4
PREFIX_LENGTH = GROUP_LENGTH
MAX_NAME = 100
# Longer input is not one of ours: refused before any hashing.
MAX_LOGIN = 320
MAX_PASSWORD = 100


def new_app_password() -> str:
    """A fresh password such as ``k7pq-3mzd-wq9e-tx4h`` (80 bits)."""
    groups = ("".join(secrets.choice(ALPHABET) for _ in range(GROUP_LENGTH)) for _ in range(GROUPS))
    return "-".join(groups)


def normalise(password: str) -> str:
    """What was typed, as stored: case, spaces and dashes do not matter."""
    return "".join(password.split()).replace("-", "").lower()


async def create_app_password(session: AsyncSession, user_id: int, name: str) -> str:
    """Make a password for `user_id`'s mail client; the only time it is seen. Caller commits."""
    password = new_app_password()
    plain = normalise(password)
    digest = await asyncio.to_thread(hash_password, plain)  # slow on purpose
    session.add(
        AppPassword(
            user_id=user_id, name=name[:MAX_NAME], hash=digest, prefix=plain[:PREFIX_LENGTH]
        )
    )
    await session.flush()
    return password


async def app_passwords_of(session: AsyncSession, user_id: int) -> Sequence[AppPassword]:
    """A user's app passwords, newest first, revoked ones included."""
    result = await session.scalars(
        select(AppPassword)
        .where(AppPassword.user_id == user_id)
        .order_by(AppPassword.created_at.desc(), AppPassword.id.desc())
    )
    return result.all()


async def revoke_app_password(session: AsyncSession, user_id: int, password_id: int) -> bool:
    """Revoke one of the user's own passwords; False when no such password is theirs (S7)."""
    row = await session.scalar(
        select(AppPassword).where(AppPassword.id == password_id, AppPassword.user_id == user_id)
    )
    if row is None:
        return False
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
    return True


async def user_for_app_password(session: AsyncSession, login: str, password: str) -> User | None:
    """The user whose live app password this is (recording its use), else None.

    The login is the user's email address. An unknown login, or a password whose
    prefix matches nothing, still costs one argon2 check, so timing does not
    tell which addresses have an account. The caller commits.
    """
    plain = normalise(password)
    if len(login) > MAX_LOGIN or len(password) > MAX_PASSWORD or not plain:
        return None
    user = await user_by_email(session, login)
    candidates: Sequence[AppPassword] = []
    if user is not None:
        # Nearly always one row; two live passwords sharing a prefix (1 in 2**20) are both tried.
        candidates = (
            await session.scalars(
                select(AppPassword).where(
                    AppPassword.user_id == user.id,
                    AppPassword.prefix == plain[:PREFIX_LENGTH],
                    AppPassword.revoked_at.is_(None),
                )
            )
        ).all()
    if not candidates:
        await asyncio.to_thread(sign_in_matches, None, plain)
        return None
    for candidate in candidates:
        if await asyncio.to_thread(password_matches, candidate.hash, plain):
            candidate.last_used_at = datetime.now(UTC)
            return user
    return None
