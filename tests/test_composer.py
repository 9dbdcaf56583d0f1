"""The composer a salesperson expects (B13) and the bugs a new user found in it (#9:
1, 4, 5, 7), over real HTTP to a real SMTP sink, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from mailbeacon.core.limits import MAX_ATTACHMENT_BYTES
from mailbeacon.mail import worker as worker_module
from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.tables import Attachment, Message, MessageTemplate, SendJob, User
from tests.conftest import LiveApp, SmtpRecorder
from tests.helpers import delivered, eventually
from tests.web_helpers import Browser, sign_in

BODY = "<p>Hello</p>"
EMPTY_FORM = {"to": "", "cc": "", "bcc": "", "subject": "", "format": "html", "body": ""}


async def post_compose(
    browser: Browser, files: list[tuple[str, tuple[str, bytes, str]]] | None = None, **fields: str
) -> httpx.Response:
    """The composer's form as the page sends it: multipart/form-data, files or not."""
    data = {"csrf_token": browser.csrf, **EMPTY_FORM, **fields}
    parts = files or [("attachments", ("", b"", "application/octet-stream"))]
    return await browser.client.post("/mail/new", data=data, files=parts)


def queued_id(response: httpx.Response) -> int:
    assert response.status_code == 303, response.text[:2000]
    match = re.fullmatch(r"/mail/(\d+)\?sent=1", response.headers["location"])
    assert match, response.headers["location"]
    return int(match.group(1))


async def db_rows(live: LiveApp, query: Any) -> list[Any]:
    engine = make_engine(live.settings.effective_database_url)
    try:
        async with sessions(engine)() as db:
            return list((await db.execute(query)).all())
    finally:
        await engine.dispose()


async def db_update(live: LiveApp, statement: Any) -> None:
    engine = make_engine(live.settings.effective_database_url)
    try:
        async with sessions(engine)() as db, db.begin():
            await db.execute(statement)
    finally:
        await engine.dispose()


# --- bug 1: big bodies -----------------------------------------------------------------


async def test_body_over_one_mebibyte_is_sent_not_a_generic_error(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    """A pasted screenshot (a 1.5 MB data: image) used to be a bare 400 from the form
    parser's 1 MiB per-field default; now it is within our limit and goes out."""
    picture = "<p><img src='data:image/png;base64," + "A" * 1_500_000 + "'></p>"
    browser = await sign_in(live, live.email)
    try:
        response = await post_compose(
            browser, to="big@example.com", subject="Screenshot", body=picture
        )
        message_id = queued_id(response)
        await delivered(live.client, message_id, live.auth())
        assert "A" * 1000 in (smtp_server.to("big@example.com").body("html") or "")
    finally:
        await browser.aclose()


async def test_body_over_our_limit_gets_our_error_and_keeps_the_draft(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    """Past MAX_BODY_CHARS the page says the limit in words and gives the text back."""
    body = "<p>" + "x" * 5_000_001 + "</p>"
    browser = await sign_in(live, live.email)
    try:
        response = await post_compose(browser, to="a@example.com", subject="Kept", body=body)
        assert response.status_code == 422
        assert "At most 5000000 characters." in response.text
        assert 'value="Kept"' in response.text and "x" * 10_000 in response.text
        assert smtp_server.mails == []
    finally:
        await browser.aclose()


async def test_composer_checks_the_request_limit_before_submitting(live: LiveApp) -> None:
    """Over 12 MB the server can only refuse (413, draft gone): the page carries the
    limits so compose.js refuses first, with a translated message in the page."""
    browser = await sign_in(live, live.email)
    try:
        page = (await browser.get("/mail/new")).text
        assert 'data-max-request="12582912"' in page
        assert f'data-max-attachments="{MAX_ATTACHMENT_BYTES}"' in page
        assert 'id="too-large" hidden' in page and "nothing you wrote is lost" in page
        german = await sign_in(live, live.email)
        await db_update(live, update(User).values(locale="de"))
        assert "nichts von dem, was Sie geschrieben haben" in (await german.get("/mail/new")).text
        await german.aclose()
    finally:
        await browser.aclose()


# --- bug 4: addresses ------------------------------------------------------------------


async def test_every_address_error_is_shown_at_once(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    browser = await sign_in(live, live.email)
    try:
        response = await post_compose(
            browser,
            to="ok@example.com, first-bad, second bad@",
            cc="also-wrong",
            subject="S",
            body=BODY,
        )
        assert response.status_code == 422
        assert "“first-bad” is not a valid email address." in response.text
        assert "“second bad@” is not a valid email address." in response.text
        assert 'id="cc-error"' in response.text and "“also-wrong”" in response.text
        assert smtp_server.mails == []
    finally:
        await browser.aclose()


async def test_idn_domain_is_accepted_and_sent_in_ascii(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    """anna@exämple.com goes out as anna@xn--exmple-cua.com: no SMTPUTF8 needed."""
    browser = await sign_in(live, live.email)
    try:
        response = await post_compose(
            browser, to="Anna <anna@exämple.com>", subject="IDN", body=BODY
        )
        await delivered(live.client, queued_id(response), live.auth())
        mail = smtp_server.to("anna@xn--exmple-cua.com")
        assert mail.message["To"] == "Anna <anna@xn--exmple-cua.com>"
    finally:
        await browser.aclose()


async def test_addresses_pasted_one_per_line_are_split(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    browser = await sign_in(live, live.email)
    try:
        response = await post_compose(
            browser,
            to="anna@example.com\r\nben@example.com\nAnna Cid <cid@example.com>; dan@example.com",
            subject="Lines",
            body=BODY,
        )
        await delivered(live.client, queued_id(response), live.auth())
        got = sorted(address for mail in smtp_server.mails for address in mail.envelope_to)
        assert got == [
            "anna@example.com",
            "ben@example.com",
            "cid@example.com",
            "dan@example.com",
        ]
    finally:
        await browser.aclose()


# --- bug 5, 7 --------------------------------------------------------------------------


async def test_write_to_a_contact_fills_name_and_address(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    browser = await sign_in(live, live.email)
    try:
        response = await post_compose(
            browser, to="Anna Berg <anna@example.com>", subject="First", body=BODY
        )
        await delivered(live.client, queued_id(response), live.auth())
        page = await browser.get("/mail/new?to=anna%40example.com")
        assert 'name="to" value="Anna Berg &lt;anna@example.com&gt;"' in page.text
        suggestions = await browser.get("/mail/contacts.json?q=berg")
        assert suggestions.json()["contacts"] == [
            {
                "address": "anna@example.com",
                "name": "Anna Berg",
                "label": "Anna Berg <anna@example.com>",
            }
        ]
        await live.add_user("other@example.com")
        other = await sign_in(live, "other@example.com")
        assert (await other.get("/mail/contacts.json?q=anna")).json()["contacts"] == []  # S7
        await other.aclose()
    finally:
        await browser.aclose()


async def test_empty_subject_and_body_asks_before_sending(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    browser = await sign_in(live, live.email)
    try:
        asked = await post_compose(browser, to="a@example.com")
        assert asked.status_code == 200
        assert "no subject and no message. Send it anyway?" in asked.text
        assert 'name="confirm_empty" value="1"' in asked.text
        assert await db_rows(live, select(Message.id)) == []
        sent = await post_compose(browser, to="a@example.com", confirm_empty="1")
        await delivered(live.client, queued_id(sent), live.auth())
        assert len(smtp_server.mails) == 1
    finally:
        await browser.aclose()


# --- attachments -----------------------------------------------------------------------


async def test_attachment_arrives_byte_identical_in_every_copy(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    """Stored once, put into each recipient's copy, bytes unchanged, name in RFC 2231."""
    pdf = bytes(range(256)) * 4000 + b"\r\n.\r\n\x00end"
    name = "Prisliste Å – 2026.pdf"
    browser = await sign_in(live, live.email)
    try:
        response = await post_compose(
            browser,
            files=[
                ("attachments", (name, pdf, "application/pdf")),
                ("attachments", ("../../notes.txt", b"plain\n", "text/plain\r\nX-Evil: 1")),
            ],
            to="anna@example.com, ben@example.com",
            bcc="cid@example.com",
            subject="Prices",
            body=BODY,
        )
        message_id = queued_id(response)
        await delivered(live.client, message_id, live.auth())
        stored = await db_rows(
            live,
            select(Attachment.filename, Attachment.size).where(Attachment.message_id == message_id),
        )
        assert stored == [(name, len(pdf)), ("notes.txt", 6)]
        page = (await browser.get(f"/mail/{message_id}")).text
        assert 'Prisliste Å – 2026.pdf <span class="muted">(1.0 MB)</span>' in page
        assert 'notes.txt <span class="muted">(1 KB)</span>' in page
        for address in ("anna@example.com", "ben@example.com", "cid@example.com"):
            message = smtp_server.to(address).message
            files = list(message.iter_attachments())
            assert [part.get_filename() for part in files] == [name, "notes.txt"]
            assert hashlib.sha256(files[0].get_content()).digest() == hashlib.sha256(pdf).digest()
            assert files[1].get_content_type() in ("text/plain", "application/octet-stream")
            assert "X-Evil" not in smtp_server.to(address).raw.decode("ascii", "replace")
            assert message.get_body(preferencelist=("html",)) is not None
        assert b"filename*" in smtp_server.to("anna@example.com").raw  # RFC 2231
    finally:
        await browser.aclose()


async def test_attachments_over_the_limit_get_a_clear_message(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    browser = await sign_in(live, live.email)
    try:
        big = b"\x01" * (MAX_ATTACHMENT_BYTES + 1)
        response = await post_compose(
            browser,
            files=[("attachments", ("video.mov", big, "video/quicktime"))],
            to="a@example.com",
            subject="Kept subject",
            body=BODY,
        )
        assert response.status_code == 422
        assert "The attachments come to 10.0 MB; at most 10.0 MB per email." in response.text
        assert "please attach them again" in response.text
        assert 'value="Kept subject"' in response.text
        assert smtp_server.mails == []
    finally:
        await browser.aclose()


# --- send later ------------------------------------------------------------------------


async def test_send_later_waits_for_its_time(
    live: LiveApp, smtp_server: SmtpRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chosen local time (the user's zone) becomes the job's run_after; the worker
    sends nothing before it and sends when its clock reaches it (moved by the test)."""
    await db_update(live, update(User).values(timezone="Europe/Stockholm"))
    browser = await sign_in(live, live.email)
    try:
        local = datetime.now(UTC).astimezone().replace(tzinfo=None) + timedelta(days=2)
        chosen = local.replace(hour=9, minute=30, second=0, microsecond=0)
        response = await post_compose(
            browser,
            to="later@example.com",
            subject="Later",
            body=BODY,
            send_at=chosen.strftime("%Y-%m-%dT%H:%M"),
        )
        message_id = queued_id(response)
        [(run_after,)] = await db_rows(
            live, select(SendJob.run_after).where(SendJob.message_id == message_id)
        )
        from zoneinfo import ZoneInfo

        expected = chosen.replace(tzinfo=ZoneInfo("Europe/Stockholm")).astimezone(UTC)
        assert run_after == expected
        page = (await browser.get(f"/mail/{message_id}?sent=1")).text
        assert "Scheduled" in page and "cancel-send" in page
        assert "Your email is on its way" not in page
        # A second one is taken back before it leaves.
        other = queued_id(
            await post_compose(
                browser,
                to="never@example.com",
                subject="Never",
                body=BODY,
                send_at=chosen.strftime("%Y-%m-%dT%H:%M"),
            )
        )
        cancelled = await browser.post(f"/mail/{other}/cancel-send")
        assert cancelled.status_code == 303 and cancelled.headers["location"] == "/mail?cancelled=1"
        assert (await browser.get(f"/mail/{other}")).status_code == 404
        stranger_id, _ = await live.add_user("stranger@example.com")
        stranger = await sign_in(live, "stranger@example.com")
        refused = await stranger.post(f"/mail/{message_id}/cancel-send")  # S7
        assert refused.headers["location"] == f"/mail/{message_id}"
        await stranger.aclose()
        assert stranger_id
        worker = live.runtime.send_worker
        assert await worker.run_once() is False  # not yet due
        assert smtp_server.mails == []
        monkeypatch.setattr(worker_module, "_now", lambda: expected + timedelta(seconds=1))
        worker.wake()
        await eventually(lambda: _has_mail(smtp_server))
        assert smtp_server.to("later@example.com").message["Subject"] == "Later"
        assert [m.envelope_to for m in smtp_server.mails] == [["later@example.com"]]
    finally:
        await browser.aclose()


async def test_send_later_refuses_a_time_that_is_not_one(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    await db_update(live, update(User).values(timezone="Europe/Stockholm"))
    browser = await sign_in(live, live.email)
    try:
        for value in ("2026-02-30T10:00", "0001-01-01T00:00", "tomorrow"):
            response = await post_compose(
                browser, to="a@example.com", subject="S", body=BODY, send_at=value
            )
            assert response.status_code == 422, value
            assert "Please give a date and time for sending later." in response.text
            assert f'value="{value}"' in response.text
        assert smtp_server.mails == []
    finally:
        await browser.aclose()


async def _has_mail(smtp_server: SmtpRecorder) -> bool:
    return bool(smtp_server.mails)


# --- signature, templates, placeholders -------------------------------------------------


async def test_template_fills_first_name_per_recipient_and_signature_ends_the_body(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    """Settings > Writing saves a signature and a template; the composer starts from the
    template; each recipient's copy says their own first name, escaped in HTML."""
    browser = await sign_in(live, live.email)
    try:
        saved = await browser.post("/settings/writing/signature", {"signature": "Eva\nSales"})
        assert saved.status_code == 303
        made = await browser.post(
            "/settings/writing/templates",
            {
                "name": "Follow-up",
                "subject": "Hi {{first_name}}",
                "format": "html",
                "body": "<p>Hello {{first_name}} ({{email}}), {{ name }}.</p>",
            },
        )
        assert made.status_code == 303
        settings = (await browser.get("/settings/writing")).text
        assert "Follow-up" in settings and "Eva\nSales</textarea>" in settings
        [(template_id,)] = await db_rows(live, select(MessageTemplate.id))
        page = (await browser.get(f"/mail/new?template={template_id}")).text
        assert 'value="Hi {{first_name}}"' in page
        assert "Hello {{first_name}}" in page and "-- &lt;br&gt;Eva&lt;br&gt;Sales" in page
        body = "<p>Hello {{first_name}} ({{email}}), {{ name }}.</p><p>-- <br>Eva<br>Sales</p>"
        response = await post_compose(
            browser,
            to='Anna Berg <anna@example.com>, "<b>Bob</b> Lee" <bob@example.com>',
            bcc="cid@example.com",
            subject="Hi {{first_name}}",
            body=body,
        )
        await delivered(live.client, queued_id(response), live.auth())
        anna = smtp_server.to("anna@example.com")
        assert anna.message["Subject"] == "Hi Anna"
        assert "Hello Anna (anna@example.com), Anna Berg." in (anna.body("html") or "")
        assert "Hello Anna (anna@example.com), Anna Berg." in (anna.body("plain") or "")
        bob = smtp_server.to("bob@example.com")
        assert "Hello &lt;b&gt;Bob&lt;/b&gt; (bob@example.com)" in (bob.body("html") or "")
        assert str(smtp_server.to("cid@example.com").message["Subject"]).strip() == "Hi"
        other = await live.add_user("other@example.com")
        assert other
        stranger = await sign_in(live, "other@example.com")
        assert (
            "Hello {{first_name}}"
            not in (await stranger.get(f"/mail/new?template={template_id}")).text
        )  # S7
        deleted = await stranger.post(f"/settings/writing/templates/{template_id}/delete")
        assert deleted.status_code == 404
        await stranger.aclose()
    finally:
        await browser.aclose()
