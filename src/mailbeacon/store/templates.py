"""A user's saved emails (templates) and signature (B13). Every query is scoped to
one user (S7): someone else's template is simply not found."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailbeacon.store.tables import MessageTemplate, User

MAX_TEMPLATES = 100
MAX_NAME = 100
MAX_SIGNATURE = 2000


async def list_templates(db: AsyncSession, user_id: int) -> list[MessageTemplate]:
    """The user's templates by name."""
    rows = await db.scalars(
        select(MessageTemplate)
        .where(MessageTemplate.user_id == user_id)
        .order_by(MessageTemplate.name)
        .limit(MAX_TEMPLATES)
    )
    return list(rows)


async def get_template(db: AsyncSession, user_id: int, template_id: int) -> MessageTemplate | None:
    """One of the user's templates, or None (also for anyone else's)."""
    found: MessageTemplate | None = await db.scalar(
        select(MessageTemplate).where(
            MessageTemplate.id == template_id, MessageTemplate.user_id == user_id
        )
    )
    return found


async def save_template(
    db: AsyncSession, user_id: int, *, name: str, subject: str, format: str, body: str
) -> MessageTemplate:
    """Add a template, or replace the one of the same name (saving again updates it)."""
    existing: MessageTemplate | None = await db.scalar(
        select(MessageTemplate).where(
            MessageTemplate.user_id == user_id, MessageTemplate.name == name
        )
    )
    if existing is None:
        existing = MessageTemplate(user_id=user_id, name=name)
        db.add(existing)
    existing.subject = subject
    existing.format = "text" if format == "text" else "html"
    existing.body = body
    await db.flush()
    return existing


async def count_templates(db: AsyncSession, user_id: int) -> int:
    return len(await list_templates(db, user_id))


async def delete_template(db: AsyncSession, user_id: int, template_id: int) -> bool:
    """Remove one of the user's templates; False when there is no such template."""
    result = await db.execute(
        delete(MessageTemplate).where(
            MessageTemplate.id == template_id, MessageTemplate.user_id == user_id
        )
    )
    return bool(getattr(result, "rowcount", 0))


async def set_signature(db: AsyncSession, user_id: int, signature: str) -> None:
    await db.execute(update(User).where(User.id == user_id).values(signature=signature))
