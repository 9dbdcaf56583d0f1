"""Users' own SMTP servers, with the password encrypted at rest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.ext.asyncio import AsyncSession

from mailbeacon.store.tables import Mailbox

SECURITY_MODES = ("none", "starttls", "tls")


@dataclass(frozen=True, slots=True)
class MailboxSettings:
    """A mailbox as the user sees it; the password is never sent back to a page."""

    host: str
    port: int
    security: str
    username: str
    has_password: bool


async def load_mailbox(session: AsyncSession, user_id: int) -> Mailbox | None:
    return await session.get(Mailbox, user_id)


async def save_mailbox(
    session: AsyncSession,
    fernet: Fernet,
    user_id: int,
    *,
    host: str,
    port: int,
    security: str,
    username: str,
    password: str | None,
) -> Mailbox:
    """Create or update; a None password keeps the stored one."""
    if security not in SECURITY_MODES:
        raise ValueError(f"security must be one of {', '.join(SECURITY_MODES)}")
    mailbox = await session.get(Mailbox, user_id)
    if mailbox is None:
        mailbox = Mailbox(user_id=user_id, password_encrypted=b"")
        session.add(mailbox)
    mailbox.host = host
    mailbox.port = port
    mailbox.security = security
    mailbox.username = username
    if password is not None:
        mailbox.password_encrypted = fernet.encrypt(password.encode("utf-8")) if password else b""
    mailbox.updated_at = datetime.now(UTC)
    await session.flush()
    return mailbox


def mailbox_password(fernet: Fernet, mailbox: Mailbox) -> str:
    """The stored password, or '' when there is none or the data key changed."""
    if not mailbox.password_encrypted:
        return ""
    try:
        return fernet.decrypt(mailbox.password_encrypted).decode("utf-8")
    except InvalidToken:
        return ""
