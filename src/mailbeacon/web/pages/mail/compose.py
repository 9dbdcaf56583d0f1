"""The composer (S5, S6, S3, S10): write, send, and see beforehand what will not be tracked."""

from __future__ import annotations

from dataclasses import dataclass, replace

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from mailbeacon.core.compose import REQUEST_PROBLEMS, Draft, InvalidRequest
from mailbeacon.core.policy import N_, REASON_TEXT, Untracked
from mailbeacon.core.text import html_to_text
from mailbeacon.mail.sending import SendInput, draft_from, trackable_links, tracking_for
from mailbeacon.store.tables import User
from mailbeacon.web.auth import SignedIn
from mailbeacon.web.i18n import Localizer
from mailbeacon.web.pages.mail.shared import LINK_REASONS, OPEN_REASONS, Checked, Current
from mailbeacon.web.render import localizer_for, render

router = APIRouter(include_in_schema=False)

MAX_PREFILL = 2_000
# Reasons only the user's settings can change; the preview then points there.
SWITCH_REASONS = frozenset({Untracked.OPENS_SWITCH_OFF, Untracked.LINKS_SWITCH_OFF})


@dataclass(frozen=True, slots=True)
class ComposeForm:
    """What the composer holds, kept as typed so an error never loses the user's input."""

    to: str = ""
    cc: str = ""
    bcc: str = ""
    subject: str = ""
    format: str = "html"
    body: str = ""
    track_opens: bool = True
    track_links: bool = True

    @classmethod
    def defaults(cls, user: User, to: str = "") -> ComposeForm:
        """A fresh form: the last email's toggles become the defaults (S6)."""
        return cls(
            to=to[:MAX_PREFILL],
            track_opens=user.last_track_opens,
            track_links=user.last_track_links,
        )

    @classmethod
    def from_form(cls, form: FormData) -> ComposeForm:
        """The posted form; an absent (unchecked) or non-text field reads as empty."""

        def text(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        return cls(
            to=text("to"),
            cc=text("cc"),
            bcc=text("bcc"),
            subject=text("subject"),
            format="text" if text("format") == "text" else "html",
            body=text("body"),
            track_opens=text("track_opens") == "1",
            track_links=text("track_links") == "1",
        )

    def send_input(self, user: User) -> SendInput:
        """The request for the sender; a toggle the user never saw keeps their last choice."""
        html: str | None = None
        text: str | None = self.body
        if self.format == "html":
            html = self.body
            text = html_to_text(self.body) if self.body.strip() else None
        return SendInput(
            to=[self.to],
            cc=[self.cc],
            bcc=[self.bcc],
            subject=self.subject,
            html=html,
            text=text,
            track_opens=self.track_opens if user.open_tracking else None,
            track_links=self.track_links if user.link_tracking else None,
        )


@dataclass(frozen=True, slots=True)
class Preview:
    """What will and will not be tracked, said before sending (DESIGN rule 5)."""

    opens: bool
    links: bool
    link_count: int
    open_reasons: tuple[str, ...]
    link_reasons: tuple[str, ...]
    in_settings: bool


def tracking_preview(user: User, form: ComposeForm, public_url: str) -> Preview | None:
    """The policy's answer for the form as it stands, through the sender's own functions.

    Recipients may still be missing or wrong while typing; the body alone decides
    tracking, so an address problem falls back to a placeholder recipient.
    """
    request = form.send_input(user)
    draft: Draft | None = None
    for attempt in (request, replace(request, to=[user.email], cc=[], bcc=[], subject="")):
        try:
            draft = draft_from(user, attempt)
            break
        except InvalidRequest:
            continue
    if draft is None:
        return None
    links = trackable_links(draft, public_url)
    decision = tracking_for(user, draft, request, links)
    return Preview(
        opens=decision.track_opens,
        links=decision.track_links,
        link_count=len(links),
        open_reasons=tuple(REASON_TEXT[r] for r in decision.reasons if r in OPEN_REASONS),
        link_reasons=tuple(REASON_TEXT[r] for r in decision.reasons if r in LINK_REASONS),
        in_settings=any(r in SWITCH_REASONS for r in decision.reasons),
    )


FORM_FIELDS = {"to": "to", "cc": "cc", "bcc": "bcc", "subject": "subject"}


def field_error(exc: InvalidRequest, l10n: Localizer) -> tuple[str, str]:
    """The form field an error belongs to, and the error in the user's language."""
    field = FORM_FIELDS.get(exc.field, "body")
    message = REQUEST_PROBLEMS.get(exc.code, N_("Please check this field."))
    return field, l10n.gettext(message, **exc.params)


async def compose_page(
    request: Request,
    current: SignedIn,
    form: ComposeForm,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """The composer; shared by the blank form and a failed send, so both show the preview."""
    runtime = request.app.state.runtime
    preview = tracking_preview(current.user, form, runtime.settings.public_url.rstrip("/"))
    return await render(
        request,
        "mail/compose.html",
        {"form": form, "errors": errors or {}, "preview": preview},
        status_code=status_code,
    )


@router.get("/mail/new")
async def compose(request: Request, current: Current, to: str = "") -> HTMLResponse:
    """A blank composer; `?to=` prefills the recipient (the contact page's "Write to")."""
    return await compose_page(request, current, ComposeForm.defaults(current.user, to))


@router.post("/mail/new")
async def send(request: Request, current: Checked) -> Response:
    """Send, or show the form again with the user's input and the error by its field."""
    form = ComposeForm.from_form(await request.form())
    runtime = request.app.state.runtime
    try:
        message = await runtime.sender.send(current.user.id, form.send_input(current.user))
    except InvalidRequest as exc:
        field, problem = field_error(exc, localizer_for(request, current))
        return await compose_page(request, current, form, {field: problem}, status_code=422)
    return RedirectResponse(f"/mail/{message.id}?sent=1", status_code=303)


@router.post("/mail/tracking-preview")
async def preview(request: Request, current: Checked) -> HTMLResponse:
    """The composer's live "what will not be tracked" note (compose.js posts the form)."""
    form = ComposeForm.from_form(await request.form())
    runtime = request.app.state.runtime
    return await render(
        request,
        "mail/_preview.html",
        {"preview": tracking_preview(current.user, form, runtime.settings.public_url.rstrip("/"))},
    )
