"""The notification feed, mark-as-read and the live bell stream, over real HTTP (S9, B5, S7).

Runs on SQLite and PostgreSQL: mail goes to a real SMTP server, the pixel is
fetched from the captured copy, the app's own processor raises the notification.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import update

from mailbeacon.app import create_app
from mailbeacon.settings import load_settings
from mailbeacon.store.accounts import add_user
from mailbeacon.store.db import make_engine, sessions
from mailbeacon.store.tables import User
from mailbeacon.web.pages import notifications
from tests.conftest import TEST_SECRET, LiveApp, SmtpRecorder, bound_socket
from tests.helpers import click_urls, delivered, eventually, pixel_url, reader_client
from tests.web_helpers import PASSWORD, Browser, sign_in

HTML = '<p>Hello, see <a href="https://example.com/pricing">our prices</a>.</p>'
BELL = re.compile(r'<span class="bell-count" id="bell-count" data-count="(\d+)"')
MARK_READ = re.compile(r'action="/notifications/(\d+)/read"')


async def send(live: LiveApp, token: str | None = None, **body: Any) -> dict[str, Any]:
    response = await live.client.post("/api/v1/messages", json=body, headers=live.auth(token))
    assert response.status_code == 201, response.text
    return dict(await delivered(live.client, response.json()["id"], live.auth(token)))


async def open_copy(smtp_server: SmtpRecorder, address: str) -> None:
    """Load the pixel of `address`'s copy, as their mail client would."""
    html = smtp_server.to(address).body("html")
    assert html
    async with reader_client() as reader:
        response = await reader.get(pixel_url(html), headers={"User-Agent": "Thunderbird"})
        assert response.status_code == 200


async def click_copy(smtp_server: SmtpRecorder, address: str) -> None:
    html = smtp_server.to(address).body("html")
    assert html
    async with reader_client() as reader:
        response = await reader.get(click_urls(html)[0], headers={"User-Agent": "Thunderbird"})
        assert response.status_code == 302


def bell(page: str) -> int:
    match = BELL.search(page)
    assert match, page
    return int(match.group(1))


async def feed_with(browser: Browser, text: str, count: int = 1) -> str:
    """The feed once it shows `text` `count` times (the processor runs in the background)."""

    async def check() -> str | None:
        page = (await browser.get("/notifications")).text
        return page if page.count(text) >= count else None

    result: str = await eventually(check)
    return result


async def set_notify(live: LiveApp, on: bool) -> None:
    engine = make_engine(live.settings.effective_database_url)
    try:
        async with sessions(engine)() as db, db.begin():
            await db.execute(update(User).where(User.id == live.user_id).values(notify_tracking=on))
    finally:
        await engine.dispose()


async def test_feed_lists_opens_and_clicks_and_marks_them_read(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    sent = await send(
        live,
        to=['"Anna <b>Ångström</b>" <anna@example.com>'],
        subject="Prices <script>alert(1)</script>",
        html=HTML,
    )
    owner = await sign_in(live, live.email)
    empty = (await owner.get("/notifications")).text
    assert "No notifications yet" in empty and bell(empty) == 0

    await open_copy(smtp_server, "anna@example.com")
    page = await feed_with(owner, "opened")
    # Recipient names and subjects are user-controlled: shown as text, never markup.
    assert "Anna &lt;b&gt;Ångström&lt;/b&gt; opened “Prices &lt;script&gt;" in page
    assert "<script>alert" not in page and "<b>Ångström" not in page
    assert f'href="/mail/{sent["id"]}"' in page
    assert bell(page) == 1
    assert 'class="notify-item unread"' in page
    assert "<time datetime=" in page and " ago" in page

    (notification_id,) = MARK_READ.findall(page)
    forged = await owner.client.post(f"/notifications/{notification_id}/read")
    assert forged.status_code == 403
    wrong = await owner.client.post(
        f"/notifications/{notification_id}/read", data={"csrf_token": "not-the-token"}
    )
    assert wrong.status_code == 403
    assert bell((await owner.get("/notifications")).text) == 1

    response = await owner.post(f"/notifications/{notification_id}/read")
    assert response.status_code == 303 and response.headers["location"] == "/notifications"
    page = (await owner.get("/notifications")).text
    assert bell(page) == 0
    assert "notify-item unread" not in page and "Anna" in page

    await open_copy(smtp_server, "anna@example.com")
    await click_copy(smtp_server, "anna@example.com")
    page = await feed_with(owner, "clicked https://example.com/pricing in")
    # The re-open within the quiet gap is no news (B3); the click is.
    assert page.count("opened") == 1 and bell(page) == 1
    assert (await owner.client.post("/notifications/read-all")).status_code == 403
    response = await owner.post("/notifications/read-all")
    assert response.status_code == 303
    page = (await owner.get("/notifications")).text
    assert bell(page) == 0 and "notify-item unread" not in page
    assert (await owner.post("/notifications/999999999/read")).status_code == 404
    await owner.aclose()


async def test_no_notifications_while_switched_off(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    sent = await send(live, to=["anna@example.com"], subject="Quiet", html=HTML)
    await set_notify(live, False)
    owner = await sign_in(live, live.email)
    await open_copy(smtp_server, "anna@example.com")

    async def counted() -> bool:
        response = await live.client.get(f"/api/v1/messages/{sent['id']}", headers=live.auth())
        return bool(response.json()["opens"]["count"] == 1)

    await eventually(counted)  # processed: the open is recorded, nothing is notified
    page = (await owner.get("/notifications")).text
    assert bell(page) == 0
    assert "Notifications are switched off" in page and 'href="/settings"' in page
    assert "opened" not in page
    await owner.aclose()


async def test_another_user_sees_none_of_it(live: LiveApp, smtp_server: SmtpRecorder) -> None:
    await send(live, to=["anna@example.com"], subject="Mine alone", html=HTML)
    owner = await sign_in(live, live.email)
    await open_copy(smtp_server, "anna@example.com")
    (notification_id,) = MARK_READ.findall(await feed_with(owner, "opened"))

    await live.add_user("other@example.com")
    other = await sign_in(live, "other@example.com")
    page = (await other.get("/notifications")).text
    assert "Mine alone" not in page and "anna@example.com" not in page and bell(page) == 0
    assert (await other.post(f"/notifications/{notification_id}/read")).status_code == 404
    assert (await other.post("/notifications/read-all")).status_code == 303
    assert bell((await owner.get("/notifications")).text) == 1
    await other.aclose()
    await owner.aclose()


async def test_signed_out_pages_and_bad_input(live: LiveApp) -> None:
    response = await live.client.get("/notifications", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    response = await live.client.post("/notifications/read-all", follow_redirects=False)
    assert response.status_code == 303
    owner = await sign_in(live, live.email)
    assert (await owner.post(f"/notifications/{2**70}/read")).status_code == 404
    assert (await owner.get("/notifications?page=0")).status_code == 200  # page 1
    page = (await owner.get("/notifications?page=7")).text
    assert "No notifications yet" in page
    await owner.aclose()


# -- the live stream ------------------------------------------------------------------------


@dataclass
class EventStream:
    """Reads Server-Sent Events from an open streaming response."""

    lines: AsyncIterator[str]
    ids: list[str] = field(default_factory=list)

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next `unread` event's data (comments and retry lines are skipped)."""
        return await asyncio.wait_for(self._next(), timeout)

    async def _next(self) -> dict[str, Any]:
        event, data = "", ""
        async for line in self.lines:
            if line == "":
                if event == "unread":
                    return dict(json.loads(data))
                event, data = "", ""
            elif line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                data += line[len("data: ") :]
            elif line.startswith("id: "):
                self.ids.append(line[len("id: ") :])
        raise EOFError("the stream ended")

    async def ended(self, timeout: float) -> bool:
        """True once the server ends the stream (no further events), within `timeout`."""
        try:
            await asyncio.wait_for(self._next(), timeout)
        except (EOFError, httpx.TransportError):
            return True
        return False


@asynccontextmanager
async def event_stream(
    browser: Browser, headers: dict[str, str] | None = None
) -> AsyncIterator[EventStream]:
    async with browser.client.stream("GET", "/notifications/stream", headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-accel-buffering"] == "no"
        yield EventStream(response.aiter_lines())


async def test_stream_pushes_new_activity_to_its_user_only(
    live: LiveApp, smtp_server: SmtpRecorder
) -> None:
    sent = await send(live, to=["Anna <anna@example.com>"], subject="Live <i>now</i>", html=HTML)
    await live.add_user("other@example.com")
    owner = await sign_in(live, live.email)
    other = await sign_in(live, "other@example.com")
    async with event_stream(owner) as mine, event_stream(other) as theirs:
        assert await mine.next() == {"unread": 0, "new": []}
        assert await theirs.next() == {"unread": 0, "new": []}
        await open_copy(smtp_server, "anna@example.com")
        update_ = await mine.next(timeout=8)
        assert update_["unread"] == 1
        [new] = update_["new"]
        assert isinstance(new.pop("id"), int)  # a desktop notification marks it read by id
        assert new == {"text": "Anna opened “Live <i>now</i>”", "url": f"/mail/{sent['id']}"}
        with pytest.raises(TimeoutError):
            await theirs.next(timeout=2.5)
        # Marking read elsewhere (another tab) updates the bell too.
        await owner.post("/notifications/read-all")
        assert await mine.next(timeout=5) == {"unread": 0, "new": []}
    await owner.aclose()
    await other.aclose()


async def test_stream_resumes_from_last_event_id(live: LiveApp, smtp_server: SmtpRecorder) -> None:
    """A browser reconnecting after a gap gets what arrived meanwhile (EventSource sends the id)."""
    await send(live, to=["anna@example.com"], subject="While away", html=HTML)
    owner = await sign_in(live, live.email)
    async with event_stream(owner) as stream:
        await stream.next()
        last_id = stream.ids[-1]
    await open_copy(smtp_server, "anna@example.com")
    await feed_with(owner, "opened")
    async with event_stream(owner, {"Last-Event-ID": last_id}) as stream:
        first = await stream.next()
        assert first["unread"] == 1
        assert [item["text"] for item in first["new"]] == ["anna@example.com opened “While away”"]
    async with event_stream(owner, {"Last-Event-ID": "not a number"}) as stream:
        assert await stream.next() == {"unread": 1, "new": []}
    await owner.aclose()


async def test_stream_refuses_strangers(live: LiveApp) -> None:
    response = await live.client.get("/notifications/stream", follow_redirects=False)
    assert response.status_code == 401
    assert response.content == b""
    cookies = {"mb_session": "forged"}
    async with httpx.AsyncClient(base_url=live.base_url, cookies=cookies) as stranger:
        response = await stranger.get("/notifications/stream")
    assert response.status_code == 401


async def test_stream_ends_by_itself_and_sends_keepalives(
    live: LiveApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Streams are bounded (the browser reconnects), so none holds a server shutdown up."""
    monkeypatch.setattr(notifications, "STREAM_SECONDS", 1.6)
    monkeypatch.setattr(notifications, "KEEPALIVE_SECONDS", 0.5)
    owner = await sign_in(live, live.email)
    async with owner.client.stream("GET", "/notifications/stream") as response:
        body = ""
        async for chunk in response.aiter_text():
            body += chunk
    assert body.startswith("retry: 3000\nid: 0\nevent: unread\n")
    assert ": keepalive\n\n" in body
    await owner.aclose()


async def test_server_shutdown_is_not_held_up_by_streams(database_url: str, tmp_path: Path) -> None:
    """With a graceful-shutdown timeout, uvicorn cancels open streams and stops promptly."""
    sock = bound_socket()
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings = load_settings(
        var_dir=tmp_path, database_url=database_url, public_url=base_url, secret_keys=TEST_SECRET
    )
    engine = make_engine(database_url)
    async with sessions(engine)() as db, db.begin():
        await add_user(db, "owner@example.com", PASSWORD)
    await engine.dispose()
    config = uvicorn.Config(
        create_app(settings), log_level="critical", lifespan="on", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    live = LiveApp(settings, base_url, httpx.AsyncClient(base_url=base_url), "", 0, None)
    owner = await sign_in(live, "owner@example.com")
    async with event_stream(owner) as stream:
        await stream.next()
        server.should_exit = True
        await asyncio.wait_for(task, timeout=8)
        assert await stream.ended(timeout=5)
    await owner.aclose()
    await live.client.aclose()
