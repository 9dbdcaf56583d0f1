"""Small helpers shared by the integration tests."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

PIXEL = re.compile(r'<img src="(http://[^"]+/o/[A-Za-z0-9_-]+\.gif)"')
CLICK = re.compile(r"(http://127\.0\.0\.1:\d+/c/[A-Za-z0-9_-]+)")
# The invisible link only software follows (core.rewrite.honeypot_tag): not a reader's link.
HONEYPOT = re.compile(r'<a href="[^"]*" aria-hidden="true" tabindex="-1"[^>]*></a>')


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 10.0, interval: float = 0.05
) -> Any:
    """Wait until `check` returns something truthy; the processor runs in the background."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last: {result!r}")
        await asyncio.sleep(interval)


def pixel_url(html: str) -> str:
    found = PIXEL.findall(html)
    assert len(found) == 1, f"expected one pixel, found {found}"
    return str(found[0])


def click_urls(body: str) -> list[str]:
    """The tracked links a reader can click, in order (the honeypot left out)."""
    return [str(u) for u in CLICK.findall(HONEYPOT.sub("", body))]


# A recipient's mail client (B3 judges every hit: python-httpx's own agent is an
# HTTP library's, a scanner's). Source: Thunderbird 115 on Linux, as sent.
READER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.5.0"


def reader_client(**kwargs: Any) -> httpx.AsyncClient:
    """An HTTP client that fetches pixels and follows links as a recipient's client."""
    headers = {"User-Agent": READER_AGENT} | dict(kwargs.pop("headers", {}))
    return httpx.AsyncClient(headers=headers, **kwargs)


FINAL_STATUSES = frozenset({"sent", "partial", "failed"})


async def delivered(
    client: Any, message_id: int, headers: dict[str, str], timeout: float = 30.0
) -> Any:
    """The API's view of a message once the send worker is done with it (polled, no sleeps)."""

    async def final() -> dict[str, Any] | None:
        response = await client.get(f"/api/v1/messages/{message_id}", headers=headers)
        assert response.status_code == 200, response.text
        detail: dict[str, Any] = response.json()
        return detail if detail["status"] in FINAL_STATUSES else None

    return await eventually(final, timeout=timeout)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for a child server)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
