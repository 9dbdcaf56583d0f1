"""Pages: the mail list, the composer, the message page and contacts (S3 S5 S6 S8 S10 S11 S13 B1).

Handlers stay thin: queries live in `store.queries` (all scoped by user),
the tracking policy in `core.policy` via `mail.sending`, and these modules only
turn rows into small view objects the templates render. The open and link
icons (S8) are built in one place (`shared.track_icons`) so the list, the
message page and the contact page always agree on faded, solid and untracked.

One module per area: `listing` (/mail), `compose` (/mail/new and the live
tracking preview), `message` (/mail/{id}) and `contacts` (/contacts...).
"""

from __future__ import annotations

from fastapi import APIRouter

from mailbeacon.web.pages.mail import compose, contacts, listing, message

router = APIRouter(include_in_schema=False)
# Routes match in inclusion order: the composer's fixed /mail/new and
# /mail/tracking-preview come before the message page's /mail/{message_id}.
for area in (listing, compose, message, contacts):
    router.include_router(area.router)
