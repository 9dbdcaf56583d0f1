"""The composer (S5, S6, S3, S10): write, send, and see beforehand what will not be tracked."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from mailbeacon.core.compose import REQUEST_PROBLEMS, InvalidRequest
from mailbeacon.core.policy import LINK_PROBLEM_PREFIX, N_, REASON_TEXT, Untracked, reason_text
from mailbeacon.core.reminders import InvalidRule, Rule
from mailbeacon.mail.prepare import check_sizes
from mailbeacon.mail.sending import SendInput
from mailbeacon.store import reminders
from mailbeacon.store.db import sessions
from mailbeacon.store.tables import User
from mailbeacon.web import runtime_of
from mailbeacon.web.auth import SignedIn
from mailbeacon.web.i18n import Localizer
from mailbeacon.web.pages.mail.reminder_form import CONDITIONS, ReminderForm, reminder_problem
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
        """The request for the sender; a toggle the user never saw keeps their last choice.

        An HTML body's plain-text part is made from it by the checks that run in
        a worker process (`text_from_html`), never here on the event loop.
        """
        html = self.body if self.format == "html" else None
        return SendInput(
            to=[self.to],
            cc=[self.cc],
            bcc=[self.bcc],
            subject=self.subject,
            html=html,
            text=None if html is not None else self.body,
            track_opens=self.track_opens if user.open_tracking else None,
            track_links=self.track_links if user.link_tracking else None,
            text_from_html=html is not None,
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
    # Links left as written on purpose while the others are tracked, and why.
    skipped_links: tuple[str, ...] = ()


async def tracking_preview(request: Request, user: User, form: ComposeForm) -> Preview | None:
    """The policy's answer for the form as it stands, from the sender's own checks.

    Those parse the body, so they run in a worker process; a form too big to
    send gets no preview (sending it shows the error).
    """
    send_input = form.send_input(user)
    try:
        check_sizes(send_input)
    except InvalidRequest:
        return None
    checked = await runtime_of(request).sender.preview(user, send_input)
    if checked is None:
        return None
    reasons = checked.decision.reasons
    return Preview(
        opens=checked.decision.track_opens,
        links=checked.decision.track_links,
        link_count=checked.link_count,
        open_reasons=tuple(REASON_TEXT[r] for r in reasons if r in OPEN_REASONS),
        link_reasons=tuple(REASON_TEXT[r] for r in reasons if r in LINK_REASONS),
        in_settings=any(r in SWITCH_REASONS for r in reasons),
        skipped_links=tuple(
            text
            for code in checked.untracked_reasons
            if code.startswith(LINK_PROBLEM_PREFIX) and (text := reason_text(code))
        ),
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
    reminder: ReminderForm | None = None,
) -> HTMLResponse:
    """The composer; shared by the blank form and a failed send, so both show the preview."""
    preview = await tracking_preview(request, current.user, form)
    return await render(
        request,
        "mail/compose.html",
        {
            "form": form,
            "errors": errors or {},
            "preview": preview,
            "reminder": reminder or ReminderForm.of(current.user),
            "reminder_conditions": CONDITIONS,
        },
        status_code=status_code,
    )


@router.get("/mail/new")
async def compose(request: Request, current: Current, to: str = "") -> HTMLResponse:
    """A blank composer; `?to=` prefills the recipient (the contact page's "Write to")."""
    return await compose_page(request, current, ComposeForm.defaults(current.user, to))


@router.post("/mail/new")
async def send(request: Request, current: Checked) -> Response:
    """Queue the email and show its page (which follows delivery live), or show the form
    again with the user's input and the error by its field."""
    posted = await request.form()
    form = ComposeForm.from_form(posted)
    reminder = ReminderForm.from_form(posted)
    try:
        rule = reminder.rule()
    except InvalidRule as exc:
        message, values = reminder_problem(exc)
        problem = localizer_for(request, current).gettext(message, **values)
        return await compose_page(
            request, current, form, {"reminder": problem}, status_code=422, reminder=reminder
        )
    sender = runtime_of(request).sender
    try:
        message_id = await sender.enqueue(current.user.id, form.send_input(current.user))
    except InvalidRequest as exc:
        field, problem = field_error(exc, localizer_for(request, current))
        return await compose_page(
            request, current, form, {field: problem}, status_code=422, reminder=reminder
        )
    await keep_reminder(request, current.user.id, message_id, rule)
    sender.notify_queued()
    return RedirectResponse(f"/mail/{message_id}?sent=1", status_code=303)


async def keep_reminder(request: Request, user_id: int, message_id: int, rule: Rule | None) -> None:
    """Store the follow-up reminder of a queued message (B5), one per recipient."""
    if rule is None:
        return
    async with sessions(runtime_of(request).engine)() as db, db.begin():
        await reminders.create(db, user_id, message_id, rule)


@router.post("/mail/tracking-preview")
async def preview(request: Request, current: Checked) -> HTMLResponse:
    """The composer's live "what will not be tracked" note (compose.js posts the form)."""
    form = ComposeForm.from_form(await request.form())
    return await render(
        request,
        "mail/_preview.html",
        {"preview": await tracking_preview(request, current.user, form)},
    )
