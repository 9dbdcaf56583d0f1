"""Queries behind the account pages: tokens, sessions, mailboxes and the user list.

Every function that touches one person's data takes that person's user id and
filters by it, so a page cannot reach another user's rows by passing an id (S7).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailbeacon.store.tables import ApiToken, Mailbox, User, WebSession


async def tokens_of(session: AsyncSession, user_id: int) -> Sequence[ApiToken]:
    """A user's API tokens, newest first, revoked ones included (they explain old 401s)."""
    result = await session.scalars(
        select(ApiToken)
        .where(ApiToken.user_id == user_id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    )
    return result.all()


async def revoke_token(session: AsyncSession, user_id: int, token_id: int) -> bool:
    """Revoke one of the user's own tokens; False when no such token is theirs.

    Revoking twice keeps the first revocation time, so the list stays truthful.
    """
    token = await session.scalar(
        select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user_id)
    )
    if token is None:
        return False
    if token.revoked_at is None:
        token.revoked_at = datetime.now(UTC)
    return True


async def delete_mailbox(session: AsyncSession, user_id: int) -> None:
    """Forget the user's own SMTP server: their mail goes through the server default again."""
    await session.execute(delete(Mailbox).where(Mailbox.user_id == user_id))


async def end_other_sessions(session: AsyncSession, user_id: int, keep_hash: str) -> int:
    """Sign the user out everywhere except the session with id hash `keep_hash`.

    Used after a password change: whoever knew the old password is signed out.
    """
    result = await session.execute(
        delete(WebSession).where(WebSession.user_id == user_id, WebSession.id_hash != keep_hash)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def all_users(session: AsyncSession) -> Sequence[User]:
    """Every account, oldest first (for administrators; holds no tracking data)."""
    result = await session.scalars(select(User).order_by(User.created_at, User.id))
    return result.all()
