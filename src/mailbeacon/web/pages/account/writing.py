"""The Writing settings (B13): the signature the composer appends, and templates.

A template is a subject and body with placeholders ({{first_name}}, {{name}},
{{email}}) that the delivery process fills for each recipient; the composer picks
one from a list. Everything here is the user's own (S7): someone else's template
id is a 404.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from mailbeacon.core.limits import MAX_BODY_CHARS, MAX_SUBJECT
from mailbeacon.core.placeholders import PLACEHOLDERS
from mailbeacon.core.policy import N_
from mailbeacon.store import templates
from mailbeacon.store.db import sessions
from mailbeacon.web import runtime_of
from mailbeacon.web.pages.account.common import (
    NOTICES,
    CheckedUser,
    CurrentUser,
    FormText,
    Problem,
    Problems,
    notice_for,
    redirect_done,
)
from mailbeacon.web.render import render

router = APIRouter(include_in_schema=False)

PATH = "/settings/writing"
NOTICES.setdefault("signature-saved", N_("Your signature is saved. New emails end with it."))
NOTICES.setdefault("template-saved", N_("The template is saved. Pick it in the composer."))
NOTICES.setdefault("template-deleted", N_("The template is deleted."))


async def writing_page(
    request: Request,
    user_id: int,
    *,
    problems: Problems | None = None,
    notice: str | None = None,
    draft: dict[str, str] | None = None,
) -> HTMLResponse:
    async with sessions(runtime_of(request).engine)() as db:
        saved = await templates.list_templates(db, user_id)
    return await render(
        request,
        "account/writing.html",
        {
            "errors": problems or {},
            "notice": notice,
            "templates": saved,
            "draft": draft or {"name": "", "subject": "", "format": "html", "body": ""},
            "placeholders": ["{{" + p + "}}" for p in PLACEHOLDERS],
            "max_signature": templates.MAX_SIGNATURE,
        },
        status_code=400 if problems else 200,
    )


@router.get(PATH)
async def writing(request: Request, current: CurrentUser, done: str = "") -> HTMLResponse:
    return await writing_page(request, current.user.id, notice=notice_for(done))


@router.post(PATH + "/signature")
async def save_signature(
    request: Request, current: CheckedUser, signature: FormText = ""
) -> Response:
    if len(signature) > templates.MAX_SIGNATURE:
        problem = Problem(
            N_("Use at most %(max)s characters."), {"max": str(templates.MAX_SIGNATURE)}
        )
        return await writing_page(request, current.user.id, problems={"signature": problem})
    async with sessions(runtime_of(request).engine)() as db, db.begin():
        await templates.set_signature(db, current.user.id, signature.strip())
    return redirect_done(PATH, "signature-saved")


def template_problems(name: str, subject: str, body: str) -> Problems:
    """What keeps a template from being saved, by field."""
    problems: Problems = {}
    if not name.strip():
        problems["name"] = Problem(N_("Give the template a name."))
    elif len(name) > templates.MAX_NAME:
        problems["name"] = Problem(
            N_("Use at most %(max)s characters."), {"max": str(templates.MAX_NAME)}
        )
    if len(subject) > MAX_SUBJECT:
        problems["subject"] = Problem(
            N_("Use at most %(max)s characters."), {"max": str(MAX_SUBJECT)}
        )
    if len(body) > MAX_BODY_CHARS:
        problems["body"] = Problem(
            N_("Use at most %(max)s characters."), {"max": str(MAX_BODY_CHARS)}
        )
    return problems


@router.post(PATH + "/templates")
async def add_template(
    request: Request,
    current: CheckedUser,
    name: FormText = "",
    subject: FormText = "",
    format: FormText = "html",
    body: FormText = "",
) -> Response:
    problems = template_problems(name, subject, body)
    async with sessions(runtime_of(request).engine)() as db, db.begin():
        if (
            not problems
            and await templates.count_templates(db, current.user.id) >= templates.MAX_TEMPLATES
        ):
            problems["name"] = Problem(
                N_("At most %(max)s templates."), {"max": str(templates.MAX_TEMPLATES)}
            )
        if not problems:
            await templates.save_template(
                db, current.user.id, name=name.strip(), subject=subject, format=format, body=body
            )
    if problems:
        draft = {"name": name, "subject": subject, "format": format, "body": body}
        return await writing_page(request, current.user.id, problems=problems, draft=draft)
    return redirect_done(PATH, "template-saved")


@router.post(PATH + "/templates/{template_id}/delete")
async def remove_template(request: Request, current: CheckedUser, template_id: int) -> Response:
    async with sessions(runtime_of(request).engine)() as db, db.begin():
        if not await templates.delete_template(db, current.user.id, template_id):
            raise HTTPException(404)
    return redirect_done(PATH, "template-deleted")
