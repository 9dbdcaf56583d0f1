"""The message view's "as sent" frame fetches nothing remote, in real Chromium (rule 6):
the page says viewing it fires nothing, so no image, stylesheet, font or refresh in
the mail may reach a server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import BrowserContext

from tests.conftest import LiveApp
from tests.helpers import eventually
from tests.web_helpers import sign_in

GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
INLINE_GIF = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"


class Remote:
    """A plain HTTP server standing in for anyone's server a mail may point at."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        self.requests.append(line.decode("latin-1").strip())
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: image/gif\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n" % len(GIF) + GIF
        )
        await writer.drain()
        writer.close()


@pytest.fixture
async def remote() -> AsyncIterator[Remote]:
    server = Remote()
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = listener.sockets[0].getsockname()[1]
    yield server
    listener.close()
    await listener.wait_closed()


def hostile_body(port: int) -> str:
    base = f"http://127.0.0.1:{port}"
    return (
        f'<html><head><link rel="stylesheet" href="{base}/style.css">'
        f"<style>@import url({base}/import.css); "
        f"@font-face {{font-family: x; src: url({base}/font.woff)}} "
        f"body {{background: url({base}/background.png); font-family: x}}</style></head>"
        f'<body><p>Hello</p><img src="{base}/image.gif" alt="">'
        f'<img srcset="{base}/srcset.gif 2x" alt="">'
        f'<table background="{base}/table.gif"><tr><td>x</td></tr></table>'
        f'<video poster="{base}/poster.gif"></video>'
        f'<img src="{INLINE_GIF}" alt="inline"></body></html>'
    )


async def test_message_view_frame_fetches_nothing_remote(
    live: LiveApp, desktop: BrowserContext, remote: Remote
) -> None:
    sent = await live.client.post(
        "/api/v1/messages",
        json={
            "to": ["ann@example.com"],
            "subject": "Images",
            "html": hostile_body(remote.port),
            "track_opens": False,
            "track_links": False,
        },
        headers=live.auth(),
    )
    assert sent.status_code == 201, sent.text
    session = await sign_in(live, live.email)
    cookie = session.client.cookies.get("mb_session")
    await session.aclose()
    assert cookie
    await desktop.add_cookies([{"name": "mb_session", "value": cookie, "url": live.base_url}])
    page = await desktop.new_page()
    await page.goto(f"{live.base_url}/mail/{sent.json()['id']}", wait_until="load")
    frame = page.frame_locator("iframe.mail-frame")
    assert await frame.locator("p").inner_text() == "Hello"
    # The inline data: image still shows: only remote fetches are stopped.
    await eventually(
        lambda: frame.locator("img[alt=inline]").evaluate("img => img.naturalWidth === 1")
    )
    # The load event waits for the frame and every image and stylesheet it asked for.
    assert remote.requests == [], remote.requests
