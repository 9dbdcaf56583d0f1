"""Users' own mailboxes: the SMTP server and the same mailbox over IMAP, passwords encrypted
at rest."""

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


@dataclass(frozen=True, slots=True)
class ImapSettings:
    """The mailbox's IMAP side as the user sees it; the password is never sent back."""

    host: str
    port: int
    security: str
    username: str
    has_password: bool
    sent_folder: str
    inbox_folder: str
    checked_at: datetime | None
    error: str  # the last connection's error (an N_ message id), '' when it worked

    @classmethod
    def of(cls, mailbox: Mailbox) -> ImapSettings | None:
        """None when IMAP is not set up (no host)."""
        if not mailbox.imap_host:
            return None
        return cls(
            host=mailbox.imap_host,
            port=mailbox.imap_port,
            security=mailbox.imap_security,
            username=mailbox.imap_username,
            has_password=bool(mailbox.imap_password_encrypted),
            sent_folder=mailbox.imap_sent_folder,
            inbox_folder=mailbox.imap_inbox_folder,
            checked_at=mailbox.imap_checked_at,
            error=mailbox.imap_error,
        )


async def save_imap(
    session: AsyncSession,
    fernet: Fernet,
    user_id: int,
    *,
    host: str,
    port: int,
    security: str,
    username: str,
    password: str | None,
    sent_folder: str = "",
    inbox_folder: str = "",
) -> Mailbox:
    """Set the IMAP side of an existing mailbox; a None password keeps the stored one.

    LookupError when the user has no mailbox (SMTP) yet. The last connection's
    outcome is forgotten: it described the old settings.
    """
    if security not in SECURITY_MODES:
        raise ValueError(f"security must be one of {', '.join(SECURITY_MODES)}")
    mailbox = await session.get(Mailbox, user_id)
    if mailbox is None:
        raise LookupError("no mailbox")
    mailbox.imap_host = host
    mailbox.imap_port = port
    mailbox.imap_security = security
    mailbox.imap_username = username
    if password is not None:
        mailbox.imap_password_encrypted = (
            fernet.encrypt(password.encode("utf-8")) if password else b""
        )
    mailbox.imap_sent_folder = sent_folder
    mailbox.imap_inbox_folder = inbox_folder
    mailbox.imap_checked_at = None
    mailbox.imap_error = ""
    mailbox.updated_at = datetime.now(UTC)
    await session.flush()
    return mailbox


async def clear_imap(session: AsyncSession, user_id: int) -> None:
    """Forget the IMAP side (the SMTP side stays)."""
    mailbox = await session.get(Mailbox, user_id)
    if mailbox is None:
        return
    mailbox.imap_host = ""
    mailbox.imap_port = 0
    mailbox.imap_security = ""
    mailbox.imap_username = ""
    mailbox.imap_password_encrypted = b""
    mailbox.imap_sent_folder = ""
    mailbox.imap_inbox_folder = ""
    mailbox.imap_checked_at = None
    mailbox.imap_error = ""
    mailbox.updated_at = datetime.now(UTC)
    await session.flush()


async def record_imap_check(session: AsyncSession, user_id: int, error: str, now: datetime) -> None:
    """Remember how the last IMAP connection went ('' = it worked), for Settings."""
    mailbox = await session.get(Mailbox, user_id)
    if mailbox is None or not mailbox.imap_host:
        return
    mailbox.imap_checked_at = now
    mailbox.imap_error = error[:500]
    await session.flush()


def imap_password(fernet: Fernet, mailbox: Mailbox) -> str:
    """The stored IMAP password, or '' when there is none or the data key changed."""
    if not mailbox.imap_password_encrypted:
        return ""
    try:
        return fernet.decrypt(mailbox.imap_password_encrypted).decode("utf-8")
    except InvalidToken:
        return ""
