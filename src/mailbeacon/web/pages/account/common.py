"""What the settings pages share: who may use them, form problems, notices after a change.

A refused form is shown again with one Problem per field and nothing changed;
a successful change redirects to its page with a notice named in the query, so
that a reload repeats nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse

from mailbeacon.core.policy import N_
from mailbeacon.web.auth import SignedIn, require_csrf, require_user

CurrentUser = Annotated[SignedIn, Depends(require_user)]
CheckedUser = Annotated[SignedIn, Depends(require_csrf)]
FormText = Annotated[str, Form()]

# Sign-in passwords (password, users) and the mailbox's SMTP password alike.
MIN_PASSWORD = 8
MAX_PASSWORD = 1000

# What a successful change says after its redirect; the query names one of these.
NOTICES: dict[str, str] = {
    "saved": N_("Your settings are saved."),
    "mailbox-saved": N_("Your mailbox is saved. Send a test email to check it works."),
    "mailbox-removed": N_("Your mailbox is removed. Your mail now goes through the default."),
    "password": N_("Your password is changed. You were signed out everywhere else."),
    "revoked": N_("The token is revoked. Anything still using it is refused from now on."),
    "app-password-revoked": N_(
        "The app password is revoked. A mail client still using it can no longer send."
    ),
    "user-added": N_("The user is added. Give them their email address and password."),
    "device-forgotten": N_(
        "The browser is forgotten. It is recognised as you again the next time you use it."
    ),
}


@dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong with a field: English source text and its variables, translated when shown."""

    text: str
    values: Mapping[str, str] = field(default_factory=dict)


Problems = dict[str, Problem]


def notice_for(done: str) -> str | None:
    """Only our own fixed texts are shown, whatever the query string says."""
    return NOTICES.get(done)


def redirect_done(path: str, notice: str) -> RedirectResponse:
    """After a change: back to the page (a reload repeats nothing), with its notice."""
    return RedirectResponse(f"{path}?done={notice}", status_code=303)


def checked(value: str) -> bool:
    """A checkbox is on when the browser sent it at all."""
    return bool(value)


async def require_admin(request: Request) -> SignedIn:
    """Administrators only; anyone else sees no such page (404, not 403)."""
    current = await require_user(request)
    if not current.user.is_admin:
        raise HTTPException(404)
    return current


async def require_admin_csrf(request: Request) -> SignedIn:
    """The admin check comes first, so that to anyone else a form post is a 404 too."""
    await require_admin(request)
    return await require_csrf(request)
