"""The composer (S5, S6, S3, S10, B13): write, attach, send now or later, and see
beforehand what will not be tracked.

The form is read with our own limits (`read_form`), not the form parser's defaults:
its 1 MiB per field turned a pasted screenshot into a generic error that lost the
draft. Whatever goes wrong, the page comes back with what the user typed.
"""

from __future__ import annotations

import html as html_escape
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from mailbeacon.core.addresses import ADDRESS_PROBLEMS, Mailbox
from mailbeacon.core.compose import REQUEST_PROBLEMS, InvalidRequest
from mailbeacon.core.limits import (
    MAX_ATTACHMENT_BYTES,
    MAX_ATTACHMENTS,
    MAX_BODY_CHARS,
    MAX_FORM_FIELD_BYTES,
)
from mailbeacon.core.mime import FileAttachment, safe_content_type, safe_filename
from mailbeacon.core.policy import LINK_PROBLEM_PREFIX, N_, REASON_TEXT, Untracked, reason_text
from mailbeacon.core.reminders import InvalidRule, Rule
from mailbeacon.mail.prepare import (
    Rejected,
    address_problems,
    check_attachments,
    check_sizes,
    megabytes,
)
from mailbeacon.mail.sending import SendInput
from mailbeacon.store import addressbook, reminders, schedule, templates
from mailbeacon.store.db import sessions
from mailbeacon.store.tables import User
from mailbeacon.web import runtime_of
from mailbeacon.web.auth import SignedIn, require_csrf
from mailbeacon.web.i18n import Localizer, zone
from mailbeacon.web.pages.mail.reminder_form import CONDITIONS, ReminderForm, reminder_problem
from mailbeacon.web.pages.mail.shared import (
    LINK_REASONS,
    OPEN_REASONS,
    Current,
    database,
)
from mailbeacon.web.render import localizer_for, render
from mailbeacon.web.security import MAX_BODY_BYTES

router = APIRouter(include_in_schema=False)

MAX_PREFILL = 2_000
# Line breaks between pasted addresses (one per line) become separators.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_TAG = re.compile(r"<[^>]*>|&nbsp;|\s")
# An HTML body this short is looked at for being empty (a longer one never is).
_EMPTY_CHECK_CHARS = 10_000
_SEND_AT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


async def read_form(request: Request) -> FormData:
    """The posted form under our own documented limits (core.limits), cached on the
    request so the CSRF check reads the same one.

    A form the parser still refuses (it cannot be a composer's) is a 400 that says so,
    instead of the framework's bare one.
    """
    try:
        return await request.form(max_part_size=MAX_FORM_FIELD_BYTES, max_files=MAX_ATTACHMENTS + 1)
    except (MultiPartException, HTTPException) as exc:
        raise HTTPException(400, "The form could not be read.") from exc


async def require_compose_csrf(request: Request) -> SignedIn:
    """`Checked` for the composer: read the form with our limits first."""
    if request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        await read_form(request)
    return await require_csrf(request)


ComposeChecked = Annotated[SignedIn, Depends(require_compose_csrf)]
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
    send_at: str = ""  # send later: a local date and time (datetime-local), "" for now
    confirm_empty: bool = False  # the user said yes to "no subject and no message?"

    @classmethod
    def defaults(cls, user: User, to: str = "") -> ComposeForm:
        """A fresh form: the last email's toggles become the defaults (S6), the user's
        signature ends the body (B13)."""
        return cls(
            to=to[:MAX_PREFILL],
            body=signature_html(user.signature),
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
            send_at=text("send_at")[:40],
            confirm_empty=text("confirm_empty") == "1",
        )

    def looks_empty(self) -> bool:
        """No subject and no message: probably sent by mistake (asked before sending)."""
        if self.subject.strip() or len(self.body) > _EMPTY_CHECK_CHARS:
            return False
        return not (_TAG.sub("", self.body) if self.format == "html" else self.body.strip())

    def send_input(self, user: User) -> SendInput:
        """The request for the sender; a toggle the user never saw keeps their last choice.

        An HTML body's plain-text part is made from it by the checks that run in
        a worker process (`text_from_html`), never here on the event loop.
        """
        html = self.body if self.format == "html" else None
        return SendInput(
            to=_LINE_BREAK.split(self.to),
            cc=_LINE_BREAK.split(self.cc),
            bcc=_LINE_BREAK.split(self.bcc),
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


FORM_FIELDS = {
    "to": "to",
    "cc": "cc",
    "bcc": "bcc",
    "subject": "subject",
    "attachments": "attachments",
    "send_at": "send_at",
}
Errors = dict[str, list[str]]


def signature_html(signature: str) -> str:
    """The signature as the end of a new HTML body: the usual "-- " line, then its lines."""
    if not signature.strip():
        return ""
    lines = "<br>".join(html_escape.escape(line) for line in signature.strip().splitlines())
    return f"<p><br></p><p>-- <br>{lines}</p>"


def field_error(exc: InvalidRequest, l10n: Localizer) -> tuple[str, str]:
    """The form field an error belongs to, and the error in the user's language."""
    field = FORM_FIELDS.get(exc.field, "body")
    message = REQUEST_PROBLEMS.get(exc.code, N_("Please check this field."))
    return field, l10n.gettext(message, **exc.params)


async def all_errors(
    request: Request, exc: InvalidRequest, form: ComposeForm, current: SignedIn
) -> Errors:
    """The error that stopped the send; for an address, every address problem at once
    (parsed in a worker process, like the send itself)."""
    l10n = localizer_for(request, current)
    errors: Errors = {}
    rejected: list[Rejected] = []
    if exc.code in ADDRESS_PROBLEMS:
        rejected = await runtime_of(request).cpu.run(
            address_problems, form.send_input(current.user)
        )
    for problem in [r.error() for r in rejected] or [exc]:
        field, text = field_error(problem, l10n)
        errors.setdefault(field, []).append(text)
    return errors


async def compose_page(
    request: Request,
    current: SignedIn,
    form: ComposeForm,
    errors: Errors | None = None,
    status_code: int = 200,
    reminder: ReminderForm | None = None,
    *,
    ask_empty: bool = False,
    had_files: bool = False,
    template_id: int | None = None,
) -> HTMLResponse:
    """The composer; shared by the blank form and a failed send, so both show the preview."""
    preview = await tracking_preview(request, current.user, form)
    async with database(request) as db:
        saved = await templates.list_templates(db, current.user.id)
    return await render(
        request,
        "mail/compose.html",
        {
            "form": form,
            "errors": errors or {},
            "preview": preview,
            "reminder": reminder or ReminderForm.of(current.user),
            "reminder_conditions": CONDITIONS,
            "ask_empty": ask_empty,
            "had_files": had_files,
            "max_request_bytes": MAX_BODY_BYTES,
            "max_attachment_bytes": MAX_ATTACHMENT_BYTES,
            "max_attachments": MAX_ATTACHMENTS,
            "max_attachment_size": megabytes(MAX_ATTACHMENT_BYTES),
            "max_body_chars": MAX_BODY_CHARS,
            "templates": [(t.id, t.name) for t in saved],
            "template_id": template_id,
        },
        status_code=status_code,
    )


@router.get("/mail/new")
async def compose(
    request: Request, current: Current, to: str = "", template: str = ""
) -> HTMLResponse:
    """A blank composer; `?to=` prefills the recipient (the contact page's "Write to"),
    with the name the user last gave that address, so "Write to Anna Berg" keeps Anna's
    name; `?template=` starts from one of the user's templates (its placeholders stay
    until each copy is rendered)."""
    to = to.strip()[:MAX_PREFILL]
    form = ComposeForm.defaults(current.user, to)
    chosen = None
    async with database(request) as db:
        if to and "<" not in to and "," not in to:
            name = await addressbook.name_of(db, current.user.id, to)
            if name:
                form = replace(form, to=str(Mailbox(to, name)))
        if template.isdigit() and len(template) < 19:
            chosen = await templates.get_template(db, current.user.id, int(template))
    if chosen is not None:
        text_format = chosen.format == "text"
        signature = current.user.signature.strip()
        ending = ("\n\n-- \n" + signature if signature else "") if text_format else form.body
        form = replace(
            form,
            subject=chosen.subject,
            format="text" if text_format else "html",
            body=chosen.body + ending,
        )
    return await compose_page(
        request, current, form, template_id=chosen.id if chosen is not None else None
    )


def uploads(form: FormData) -> list[UploadFile]:
    """The files chosen (a browser sends one empty part when none is)."""
    return [
        item
        for item in form.getlist("attachments")
        if isinstance(item, UploadFile) and (item.filename or item.size)
    ]


async def read_attachments(files: list[UploadFile]) -> tuple[FileAttachment, ...]:
    """The files as they go into every copy: sizes checked before any is read."""
    check_attachments([item.size or 0 for item in files])
    read: list[FileAttachment] = []
    for item in files:
        data = await item.read()
        read.append(
            FileAttachment(
                safe_filename(item.filename or ""),
                safe_content_type(item.content_type or ""),
                data,
            )
        )
    check_attachments([len(item.data) for item in read])  # a size the client misstated
    return tuple(read)


def send_time(form: ComposeForm, user: User) -> datetime | None:
    """ "Send later": the chosen local time in the user's time zone, as UTC; None for now."""
    if not form.send_at.strip():
        return None
    if not _SEND_AT.fullmatch(form.send_at.strip()):
        raise InvalidRequest("send_at", "send_at_invalid")
    try:
        local = datetime.fromisoformat(form.send_at.strip())
        return local.replace(tzinfo=zone(user.timezone)).astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # 2026-02-30, or year 1 east of UTC
        raise InvalidRequest("send_at", "send_at_invalid") from exc


@router.post("/mail/new")
async def send(request: Request, current: ComposeChecked) -> Response:
    """Queue the email and show its page (which follows delivery live), or show the form
    again with the user's input and every error by its field.

    An email with neither subject nor message is asked about first (a second submit
    with `confirm_empty` sends it).
    """
    posted = await read_form(request)
    form = ComposeForm.from_form(posted)
    files = uploads(posted)
    reminder = ReminderForm.from_form(posted)
    try:
        rule = reminder.rule()
    except InvalidRule as exc:
        message, values = reminder_problem(exc)
        problem = localizer_for(request, current).gettext(message, **values)
        return await compose_page(
            request, current, form, {"reminder": [problem]}, status_code=422, reminder=reminder
        )
    if form.looks_empty() and not files and not form.confirm_empty:
        return await compose_page(
            request,
            current,
            replace(form, confirm_empty=True),
            reminder=reminder,
            ask_empty=True,
            status_code=200,
        )
    sender = runtime_of(request).sender
    try:
        attachments = await read_attachments(files)
        message_id = await sender.enqueue(
            current.user.id,
            form.send_input(current.user),
            attachments=attachments,
            send_at=send_time(form, current.user),
        )
    except InvalidRequest as exc:
        errors = await all_errors(request, exc, form, current)
        return await compose_page(
            request,
            current,
            form,
            errors,
            status_code=422,
            reminder=reminder,
            had_files=bool(files),
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


@router.post("/mail/{message_id:int}/cancel-send")
async def cancel_send(request: Request, current: ComposeChecked, message_id: int) -> Response:
    """Take back a scheduled email before it leaves (B13); its text returns to nobody, so
    the page says plainly that it was not sent. Too late (or not yours): the message page."""
    async with database(request) as db, db.begin():
        cancelled = await schedule.cancel(db, current.user.id, message_id, datetime.now(UTC))
    if not cancelled:
        return RedirectResponse(f"/mail/{message_id}", status_code=303)
    return RedirectResponse("/mail?cancelled=1", status_code=303)


@router.get("/mail/contacts.json")
async def contact_suggestions(request: Request, current: Current, q: str = "") -> JSONResponse:
    """Recipient autocomplete (B13): the user's own contacts matching `q`, with names."""
    if len(q.strip()) < 1:
        return JSONResponse({"contacts": []})
    async with database(request) as db:
        found = await addressbook.suggestions(db, current.user.id, q)
    return JSONResponse(
        {
            "contacts": [
                {"address": c.address, "name": c.name, "label": str(Mailbox(c.address, c.name))}
                for c in found
            ]
        },
        headers={"Cache-Control": "no-store"},
    )


@router.post("/mail/tracking-preview")
async def preview(request: Request, current: ComposeChecked) -> HTMLResponse:
    """The composer's live "what will not be tracked" note (compose.js posts the form)."""
    form = ComposeForm.from_form(await read_form(request))
    return await render(
        request,
        "mail/_preview.html",
        {"preview": await tracking_preview(request, current.user, form)},
    )
