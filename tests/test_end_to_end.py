"""The whole path, for real: API -> SMTP -> recipient's client -> collector -> processor -> API.

Runs on SQLite and on PostgreSQL. Requirements: S1, S2, S3, S10, S11, B1.
"""

from __future__ import annotations

from typing import Any

import pytest

from mailbeacon.mail import worker
from tests.conftest import LiveApp, SmtpRecorder
from tests.helpers import click_urls, delivered, eventually, pixel_url, reader_client

HTML = """<!DOCTYPE html>
<html><head><title>Offer</title></head>
<body>
<p>Hello, see <a href="https://example.com/pricing?plan=pro&amp;seats=5">our prices</a>
and <A HREF='https://example.org/demo'>book a demo</A>.</p>
<p>Or write to <a href="mailto:sales@example.com">sales</a>.</p>
<!--[if mso]><p>Outlook only</p><![endif]-->
</body></html>"""
TEXT = "Hello, see our prices: https://example.com/pricing?plan=pro&seats=5 or write to us."


async def send(live: LiveApp, **body: Any) -> dict[str, Any]:
    """Queue through the API (answered at once, "queued"), then wait for the worker."""
    response = await live.client.post("/api/v1/messages", json=body, headers=live.auth())
    assert response.status_code == 201, response.text
    queued = response.json()
    assert queued["status"] == "queued", queued
    return dict(await delivered(live.client, queued["id"], live.auth()))


async def message(live: LiveApp, message_id: int) -> dict[str, Any]:
    response = await live.client.get(f"/api/v1/messages/{message_id}", headers=live.auth())
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_send_open_click_per_recipient(live: LiveApp, smtp_server: SmtpRecorder) -> None:
    """B1: every recipient gets a copy with their own tokens; S11: all opens are recorded."""
    sent = await send(
        live,
        to=["Anna Ångström <anna@example.com>", "ben@example.com"],
        cc=["cleo@example.com"],
        bcc=["dan@example.com"],
        subject="Prices for 2027 — Ünïcode",
        html=HTML,
        text=TEXT,
        track_opens=True,
        track_links=True,
    )
    assert sent["status"] == "sent"
    assert sent["track_opens"] and sent["track_links"]
    assert [r["status"] for r in sent["recipients"]] == ["sent"] * 4
    assert {link["url"] for link in sent["links"]} == {
        "https://example.com/pricing?plan=pro&seats=5",
        "https://example.org/demo",
    }

    # Four copies, one per recipient, identical headers, one Message-ID, no Bcc header.
    assert len(smtp_server.mails) == 4
    headers = {
        (m.message["Message-ID"], m.message["Subject"], m.message["To"], m.message["Cc"])
        for m in smtp_server.mails
    }
    assert len(headers) == 1
    (_, subject, to_header, cc_header) = headers.pop()
    assert subject == "Prices for 2027 — Ünïcode"
    assert "Anna Ångström" in to_header and "ben@example.com" in to_header
    assert cc_header == "cleo@example.com"
    for mail in smtp_server.mails:
        assert mail.message["Bcc"] is None
        assert b"dan@example.com" not in mail.raw or mail.envelope_to == ["dan@example.com"]
        assert mail.message.get_content_type() == "multipart/alternative"

    anna, ben = smtp_server.to("anna@example.com"), smtp_server.to("ben@example.com")
    anna_html, ben_html = anna.body("html"), ben.body("html")
    assert anna_html and ben_html
    assert pixel_url(anna_html) != pixel_url(ben_html)
    assert "mailto:sales@example.com" in anna_html
    assert "<!--[if mso]><p>Outlook only</p><![endif]-->" in anna_html
    assert "https://example.com/pricing" not in anna_html
    # S2: plain text is link-tracked too.
    anna_text = anna.body("plain")
    assert anna_text and "https://example.com/pricing" not in anna_text
    assert len(click_urls(anna_text)) == 1

    async with reader_client() as reader:
        for _ in range(2):
            pixel = await reader.get(pixel_url(anna_html), headers={"User-Agent": "Thunderbird"})
            assert pixel.status_code == 200
            assert pixel.headers["content-type"] == "image/gif"
            assert pixel.content.startswith(b"GIF89a")
            assert "no-store" in pixel.headers["cache-control"]
        demo = [u for u in click_urls(ben_html)][1]
        click = await reader.get(demo, follow_redirects=False)
        assert click.status_code == 302
        assert click.headers["location"] == "https://example.org/demo"

    async def tracked() -> dict[str, Any] | None:
        detail = await message(live, sent["id"])
        return detail if detail["opens"]["count"] == 2 and detail["clicks"]["count"] == 1 else None

    detail = await eventually(tracked)
    by_address = {r["address"]: r for r in detail["recipients"]}
    # Anna's client fetched twice in a moment: one open (B3); Ben's click, with no
    # open before it (images blocked), counts as his open too.
    assert by_address["anna@example.com"]["opens"]["count"] == 1
    assert by_address["ben@example.com"]["opens"]["count"] == 1
    assert by_address["ben@example.com"]["clicks"]["count"] == 1
    assert by_address["dan@example.com"]["field"] == "bcc"
    demo_link = next(link for link in detail["links"] if link["url"].endswith("/demo"))
    assert demo_link["clicks"]["count"] == 1
    kinds = [(e["kind"], e["recipient"], e["verdict"], e["counted"]) for e in detail["events"]]
    assert kinds == [
        ("open", "anna@example.com", "human", True),
        ("open", "anna@example.com", "human", False),
        ("click", "ben@example.com", "human", True),
    ]
    assert detail["events"][0]["user_agent"] == "Thunderbird"
    assert detail["opens"]["first_at"] <= detail["opens"]["last_at"]


async def test_plain_text_is_link_tracked_not_open_tracked(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    """S3: plain text gives no pixel, says why, and still tracks links."""
    sent = await send(live, to=["x@example.com"], subject="plain", text=TEXT)
    assert sent["track_opens"] is False
    assert sent["track_links"] is True
    assert [u["code"] for u in sent["untracked"]] == ["no_html_part"]
    mail = smtp_server.to("x@example.com")
    assert mail.message.get_content_type() == "text/plain"
    assert mail.body("plain") and "/c/" in (mail.body("plain") or "")


async def test_empty_body_is_not_open_tracked(live: LiveApp, smtp_server: SmtpRecorder) -> None:
    """S10: an empty body gets no pixel and the user is told."""
    sent = await send(live, to=["x@example.com"], subject="nothing", html="  ")
    assert sent["track_opens"] is False
    assert [u["code"] for u in sent["untracked"]] == ["empty_body", "no_links"]
    assert "/o/" not in smtp_server.to("x@example.com").raw.decode()


async def test_toggles_default_to_last_used(live: LiveApp, smtp_server: SmtpRecorder) -> None:
    """S6: toggles used for one email become the defaults for the next."""
    first = await send(live, to=["x@example.com"], html=HTML, track_opens=False)
    assert first["track_opens"] is False and first["track_links"] is True
    second = await send(live, to=["y@example.com"], html=HTML)
    assert second["track_opens"] is False
    assert "opens_toggle_off" in [u["code"] for u in second["untracked"]]
    assert "/o/" not in smtp_server.to("y@example.com").raw.decode()


async def test_smtp_refusal_of_one_recipient_keeps_the_others(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    smtp_server.refuse.add("gone@example.com")
    sent = await send(live, to=["gone@example.com", "here@example.com"], html=HTML)
    assert sent["status"] == "partial"
    by_address = {r["address"]: r for r in sent["recipients"]}
    assert by_address["gone@example.com"]["status"] == "failed"
    assert "550" in by_address["gone@example.com"]["error"]
    assert by_address["here@example.com"]["status"] == "sent"
    assert len(smtp_server.mails) == 1


async def test_unreachable_smtp_server_is_retried_then_fails_every_recipient(
    serve_app: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreachable server is a transient failure: retried with backoff, then given up."""
    monkeypatch.setattr(worker, "RETRY_DELAYS", (0.05, 0.1))
    live = await serve_app(database_url, smtp_url="smtp://127.0.0.1:9")
    sent = await send(live, to=["a@example.com", "b@example.com"], html=HTML)
    assert sent["status"] == "failed"
    for recipient in sent["recipients"]:
        assert recipient["status"] == "failed"
        assert "gave up after 3 attempts" in recipient["error"]
        assert "could not reach the mail server 127.0.0.1:9" in recipient["error"]


async def test_list_filters_tracked_and_pages(live: LiveApp) -> None:
    """S13 (API side): ?tracked=true lists only mail sent with tracking."""
    tracked = await send(live, to=["a@example.com"], html=HTML)
    untracked = await send(
        live, to=["b@example.com"], html=HTML, track_opens=False, track_links=False
    )
    response = await live.client.get("/api/v1/messages", headers=live.auth())
    assert [m["id"] for m in response.json()["items"]] == [untracked["id"], tracked["id"]]
    response = await live.client.get("/api/v1/messages?tracked=true", headers=live.auth())
    assert [m["id"] for m in response.json()["items"]] == [tracked["id"]]
    response = await live.client.get("/api/v1/messages?per_page=1&page=2", headers=live.auth())
    body = response.json()
    assert body["total"] == 2 and [m["id"] for m in body["items"]] == [tracked["id"]]


async def test_another_users_message_is_not_found(live: LiveApp) -> None:
    """S7: another user's message does not exist for you, in detail or in lists."""
    sent = await send(live, to=["a@example.com"], html=HTML)
    _, other_token = await live.add_user("other@example.com")
    response = await live.client.get(
        f"/api/v1/messages/{sent['id']}", headers=live.auth(other_token)
    )
    assert response.status_code == 404
    listing = await live.client.get("/api/v1/messages", headers=live.auth(other_token))
    assert listing.json()["items"] == []


async def test_api_refuses_bad_tokens_and_bad_input(live: LiveApp) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        response = await live.client.get("/api/v1/messages", headers=headers)
        assert response.status_code == 401
    bad = [
        {"to": ["not an address"], "html": HTML},
        {"to": ["a@example.com\r\nBcc: victim@example.com"], "html": HTML},
        {"to": ["a@example.com"], "subject": "hi\r\nBcc: victim@example.com", "html": HTML},
        {"to": [], "html": HTML},
        {"to": "a@example.com", "html": 5},
    ]
    for body in bad:
        response = await live.client.post("/api/v1/messages", json=body, headers=live.auth())
        assert response.status_code == 422, (body, response.text)
    response = await live.client.post("/api/v1/messages", content=b"{not json", headers=live.auth())
    assert response.status_code == 422


async def test_openapi_is_published(live: LiveApp) -> None:
    response = await live.client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/messages" in paths and "/api/v1/messages/{message_id}" in paths
