"""Rendering pages: one Jinja environment, per-request language, user and CSRF token."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import func, select

from mailbeacon.store.db import sessions
from mailbeacon.store.tables import Notification
from mailbeacon.web.auth import CSRF_FIELD, SignedIn, signed_in
from mailbeacon.web.devices import note_device
from mailbeacon.web.frames import quiet_document
from mailbeacon.web.i18n import LANGUAGES, Localizer, negotiate
from mailbeacon.web.prefix import app_path

TEMPLATES = Path(__file__).parent / "templates"
environment = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True),
    extensions=["jinja2.ext.i18n"],
    undefined=StrictUndefined,
)
environment.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
environment.filters["quiet_document"] = quiet_document
templates = Jinja2Templates(env=environment)


def localizer_for(request: Request, current: SignedIn | None) -> Localizer:
    """The user's language and zone; Accept-Language for people not signed in."""
    if current is not None:
        return Localizer(current.user.locale, current.user.timezone)
    return Localizer(negotiate(request.headers.get("accept-language", "")))


async def unread_notifications(request: Request, user_id: int) -> int:
    async with sessions(request.app.state.runtime.engine)() as db:
        count = await db.scalar(
            select(func.count(Notification.id)).where(
                Notification.user_id == user_id, Notification.read_at.is_(None)
            )
        )
    return int(count or 0)


async def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render a page with everything the layout needs."""
    current = await signed_in(request)
    if current is not None:
        await note_device(request, current.user.id, current.session_hash)
    localizer = localizer_for(request, current)
    runtime = request.app.state.runtime
    page: dict[str, Any] = {
        "current": current,
        "user": current.user if current else None,
        "csrf_field": CSRF_FIELD,
        "csrf_token": current.csrf_token if current else "",
        "unread": await unread_notifications(request, current.user.id) if current else 0,
        "l10n": localizer,
        "lang": localizer.language,
        "languages": LANGUAGES,
        "now": datetime.now(UTC),
        "has_outbox": runtime.outbox is not None,
        "path": app_path(request),
        "root": runtime.settings.public_path,
        **localizer.template_globals(),
        **(context or {}),
    }
    response: HTMLResponse = templates.TemplateResponse(
        request, template, page, status_code=status_code, headers=headers
    )
    return response
