"""Pages: the user's settings (S4, B8, B9) and, for administrators, the user list.

General (tracking switches, language, time zone, name), Mailbox (the user's own
SMTP server, with a real test email), Password, API tokens, Mail clients (app
passwords for SMTP submission) and Users, one module
each; `common` holds what they share. Every query is scoped to the signed-in
user (S7): another user's token is a 404, and no page lists anything of anyone
else's except the admin-only user list, which holds no tracking data. Bad input
re-renders the form with a clear message and changes nothing; a successful
change redirects (so a reload does not repeat it) to the page with a notice.
"""

from __future__ import annotations

from fastapi import APIRouter

from mailbeacon.web.pages.account import (
    general,
    mail_clients,
    mailbox,
    password,
    tokens,
    users,
    writing,
)

# The one router app.py includes: each area keeps its own, gathered here.
router = APIRouter(include_in_schema=False)
router.include_router(general.router)
router.include_router(mailbox.router)
router.include_router(password.router)
router.include_router(tokens.router)
router.include_router(mail_clients.router)
router.include_router(users.router)
router.include_router(writing.router)
