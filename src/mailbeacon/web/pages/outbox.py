"""Pages: the embedded outbox, mail captured while no SMTP server is configured.

A captured copy is shown as its recipient would see it: the HTML in a
sandboxed frame (no scripts, no same-origin access) that still loads images,
so the real pixel fires, and whose links open in a new tab through the real
click redirect. That is the day-one flow: send, open as the recipient, watch
the bell. Captured bytes are whatever arrived over SMTP, so reading them never
trusts them: every step falls back to showing what it can.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.policy import default
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup, escape
from sqlalchemy import ColumnElement, func, literal, select
from sqlalchemy.orm import load_only

from mailbeacon.core.policy import N_
from mailbeacon.core.urls import bare_url_spans
from mailbeacon.store.db import sessions
from mailbeacon.store.tables import OutboxMail, User
from mailbeacon.web.auth import SignedIn, require_user
from mailbeacon.web.inputs import id_or_404, parse_page
from mailbeacon.web.paging import pager
from mailbeacon.web.render import render

router = APIRouter(include_in_schema=False)

PER_PAGE = 30
SOURCE_LIMIT = 200 * 1024
# Header names double as their (translated) labels.
SHOWN_HEADERS = (N_("From"), N_("To"), N_("Cc"), N_("Subject"))
# Links inside the preview open in a new tab: the frame may open popups, nothing else.
BASE_TAG = '<base target="_blank">'
# The list never loads the captured bytes (up to 25 MB a message).
LIST_COLUMNS = (
    OutboxMail.id,
    OutboxMail.received_at,
    OutboxMail.envelope_from,
    OutboxMail.envelope_to,
    OutboxMail.subject,
)
_DOCTYPE = re.compile(r"\A\s*<!doctype[^>]*>", re.IGNORECASE)


def _require_outbox(request: Request) -> None:
    """With SMTP_URL set there is no outbox, and these pages do not exist."""
    if request.app.state.runtime.outbox is None:
        raise HTTPException(404)


def _visible_to(user: User) -> ColumnElement[bool]:
    """S7: only mail the user sent (envelope sender, case-insensitive), admins included.

    A captured copy is someone's tracked mail: its body is private, and opening it fires
    the sender's pixel and links. No role reads another user's, in any view (preview,
    plain text or source), so an admin can neither read it nor record a click in it.
    """
    return func.lower(OutboxMail.envelope_from) == func.lower(literal(user.email))


@router.get("/outbox")
async def outbox_list(
    request: Request,
    current: Annotated[SignedIn, Depends(require_user)],
    page: str = "1",
) -> HTMLResponse:
    """Captured mail, newest first (an odd ?page= is page 1)."""
    _require_outbox(request)
    number = parse_page(page)
    visible = _visible_to(current.user)
    async with sessions(request.app.state.runtime.engine)() as db:
        total = int(await db.scalar(select(func.count(OutboxMail.id)).where(visible)) or 0)
        rows = (
            await db.scalars(
                select(OutboxMail)
                .options(load_only(*LIST_COLUMNS))
                .where(visible)
                .order_by(OutboxMail.received_at.desc(), OutboxMail.id.desc())
                .offset((number - 1) * PER_PAGE)
                .limit(PER_PAGE)
            )
        ).all()
    return await render(
        request,
        "outbox/list.html",
        {
            "mails": rows,
            "total": total,
            "page": number,
            "pager": pager("/outbox", number, PER_PAGE, total),
        },
    )


def _list_url(page: int) -> str:
    return "/outbox" if page <= 1 else f"/outbox?page={page}"


@router.get("/outbox/{mail_id}")
async def outbox_mail(
    request: Request,
    mail_id: str,
    current: Annotated[SignedIn, Depends(require_user)],
) -> HTMLResponse:
    """One captured copy as its recipient sees it; another user's is a 404 (S7)."""
    _require_outbox(request)
    row_id = id_or_404(mail_id)
    async with sessions(request.app.state.runtime.engine)() as db:
        row = await db.scalar(
            select(OutboxMail).where(OutboxMail.id == row_id, _visible_to(current.user))
        )
    if row is None:
        raise HTTPException(404)
    # Parsing a large message is CPU work; keep it off the event loop.
    view = await asyncio.to_thread(read_mail, row.raw)
    return await render(
        request,
        "outbox/mail.html",
        {"mail": row, "view": view, "recipients": ", ".join(row.envelope_to)},
    )


@dataclass(frozen=True, slots=True)
class MailView:
    """What could be read from one captured message."""

    headers: list[tuple[str, str]]
    date: datetime | None
    date_text: str
    html_document: str | None
    text: Markup | None
    source: str
    size: int
    truncated: bool
    malformed: bool

    @property
    def shown_kb(self) -> int:
        return min(self.size, SOURCE_LIMIT) // 1024

    @property
    def size_kb(self) -> int:
        return -(-self.size // 1024)


def read_mail(raw: bytes) -> MailView:
    """Parse raw MIME for display; never raises, whatever the bytes are."""
    message = _parse(raw)
    html = _body(message, "html") if message is not None else None
    text = _body(message, "plain") if message is not None else None
    date, date_text = _date(message) if message is not None else (None, "")
    headers = []
    if message is not None:
        headers = [(name, _header(message, name)) for name in SHOWN_HEADERS]
    return MailView(
        headers=[(name, value) for name, value in headers if value],
        date=date,
        date_text=date_text,
        html_document=preview_document(html) if html is not None else None,
        text=linkify(text) if text is not None else None,
        source=raw[:SOURCE_LIMIT].decode("utf-8", errors="replace"),
        size=len(raw),
        truncated=len(raw) > SOURCE_LIMIT,
        malformed=message is None or bool(message.defects),
    )


# The email package raises many kinds of error on hostile input (ValueError,
# IndexError, LookupError, AttributeError, ...). Captured mail is hostile input
# by definition, so each read below catches them all and falls back.


def _parse(raw: bytes) -> EmailMessage | None:
    try:
        parsed = message_from_bytes(raw, policy=default)
    except Exception:
        return None
    return parsed if isinstance(parsed, EmailMessage) else None


def _header(message: Message, name: str) -> str:
    """A header decoded (RFC 2047), or as it was written when it cannot be decoded."""
    try:
        value = message.get(name)
        return "" if value is None else str(value)
    except Exception:
        raw = next((v for k, v in message.raw_items() if k.lower() == name.lower()), "")
    try:
        return str(make_header(decode_header(str(raw))))
    except Exception:
        return str(raw)


def _date(message: Message) -> tuple[datetime | None, str]:
    """The Date header as a moment (shown in the user's zone) and as written."""
    try:
        header = message.get("Date")
    except Exception:
        return None, _header(message, "Date")
    if header is None:
        return None, ""
    moment = getattr(header, "datetime", None)
    if isinstance(moment, datetime):
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)), str(header)
    return None, str(header)


def _body(message: EmailMessage, subtype: str) -> str | None:
    """The message's text/<subtype> body, decoded as well as its charset allows."""
    try:
        part = message.get_body(preferencelist=(subtype,))
    except Exception:
        return None
    if part is None or part.get_content_type() != f"text/{subtype}":
        return None
    try:
        content = part.get_content()
    except Exception:
        content = None
    if isinstance(content, str):
        return content
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        return None
    return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else None


def preview_document(html: str) -> str:
    """The HTML for the frame's srcdoc: unchanged except for `<base target="_blank">`.

    The base tag goes right after a leading doctype (if any), so the document
    keeps its rendering mode; the pixel and the tracked links are left as
    they are, because firing them is the point.
    """
    match = _DOCTYPE.match(html)
    cut = match.end() if match else 0
    return html[:cut] + BASE_TAG + html[cut:]


def linkify(text: str) -> Markup:
    """Plain text, escaped, with its http(s) URLs as links that open in a new tab."""
    pieces: list[Markup] = []
    position = 0
    for start, end in bare_url_spans(text):
        url = text[start:end]
        pieces.append(escape(text[position:start]))
        pieces.append(Markup('<a href="{0}" target="_blank" rel="noopener">{0}</a>').format(url))
        position = end
    pieces.append(escape(text[position:]))
    return Markup("").join(pieces)
