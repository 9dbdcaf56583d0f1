"""Contacts (S8): everyone the user has mailed, and one contact's mail with the same icons."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse

from mailbeacon.store import queries
from mailbeacon.store.tables import Message, Recipient
from mailbeacon.web.pages.mail.glance import contact_glance
from mailbeacon.web.pages.mail.listing import sort_or_default
from mailbeacon.web.pages.mail.replies import reply_view
from mailbeacon.web.pages.mail.shared import (
    Current,
    RecipientItem,
    TrackIcon,
    contact_url,
    database,
    page_number,
    recipient_item,
    url_builders,
)
from mailbeacon.web.paging import pager, url_with
from mailbeacon.web.render import localizer_for, render

router = APIRouter(include_in_schema=False)

MAX_ADDRESS = 320


@dataclass(frozen=True, slots=True)
class ContactItem:
    """One email to the contact, with the icons of the copy this contact received."""

    message: Message
    copy: RecipientItem  # this contact's copy: status, client, icons

    @property
    def recipient(self) -> Recipient:
        return self.copy.recipient

    @property
    def opens(self) -> TrackIcon:
        return self.copy.opens

    @property
    def clicks(self) -> TrackIcon:
        return self.copy.clicks


@router.get("/contacts")
async def contacts(
    request: Request, current: Current, page: str = "1", q: str = "", sort: str = ""
) -> HTMLResponse:
    """Everyone the user has mailed, with totals and their activity in words; searchable,
    sortable by last activity (the sort survives paging and search)."""
    q = q.strip()[: queries.MAX_SEARCH]
    order = sort_or_default(sort)
    kept_sort = None if order == queries.SORT_SENT else order
    number = page_number(page)
    async with database(request) as db:
        result = await queries.contact_page(db, current.user.id, page=number, q=q, sort=order)
    l10n = localizer_for(request, current)
    now = datetime.now(UTC)
    return await render(
        request,
        "contacts/list.html",
        {
            "rows": [(row, contact_glance(row, l10n, now)) for row in result.rows],
            "total": result.total,
            "has_any": result.has_any,
            "q": q,
            "sort": order,
            "sort_urls": {
                key: url_with("/contacts", q=q, sort=None if key == queries.SORT_SENT else key)
                for key in queries.SORTS
            },
            "pager": pager("/contacts", number, result.per_page, result.total, q=q, sort=kept_sort),
            **url_builders(),
        },
    )


@router.get("/contacts/{address:path}")
async def contact(
    request: Request, current: Current, address: str, page: str = "1"
) -> HTMLResponse:
    """One contact's mail, each copy with its own icons; 404 for an address never mailed."""
    number = page_number(page)
    if len(address) > MAX_ADDRESS:
        raise HTTPException(404)
    async with database(request) as db:
        view = await queries.contact_view(db, current.user.id, address, page=number)
        if view is None:
            raise HTTPException(404)
        replies = await reply_view(
            db, current.user.id, [], [(m.message.id, m.recipient.id) for m in view.mails]
        )
    l10n = localizer_for(request, current)
    items = [
        ContactItem(
            mail.message,
            recipient_item(
                mail.recipient,
                mail.message,
                [a for a in view.activity if a.recipient_id == mail.recipient.id],
                [],
                l10n,
            ),
        )
        for mail in view.mails
    ]
    return await render(
        request,
        "contacts/detail.html",
        {
            "contact": view.contact,
            "items": items,
            "pager": pager(
                contact_url(view.contact.address), number, view.per_page, view.contact.emails
            ),
            **url_builders(),
            **replies.context(),
        },
    )
