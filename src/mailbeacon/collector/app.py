"""The pixel and click endpoints, answered by a bare ASGI app.

This is the hot path: verify the token, record the hit durably, answer. It
reads nothing from the database (the token carries the ids and, for clicks,
the signed destination) and sits in front of the web app by path prefix, so
no framework middleware runs for a hit (DESIGN: "The collector is not a
FastAPI route"). Whatever happens inside, a recipient gets a GIF or a valid
redirect (DESIGN rule 1); a forged token records nothing and redirects
nowhere (rule 2).

The one exception to "no database": a link too long to travel in its token
(core.tokens, INLINE_URL_BYTES) is named by its stored id, and its URL is read
through a bounded cache (store.links) and redirected to only if it matches the
digest the token signs. A link seen before keeps redirecting while the database
is down; one never seen gets a "try again" page (503) and records nothing.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

from mailbeacon.core.hits import Hit, HitKind, new_hit_id, truncate_ip
from mailbeacon.core.networks import NetworkTable
from mailbeacon.core.tokens import InvalidToken, KeyRing, TokenKind
from mailbeacon.store.hitlog import HitLog
from mailbeacon.store.links import StoredLinks

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PREFIX = "/o/"
CLICK_PREFIX = "/c/"
MAX_USER_AGENT = 512

TRANSPARENT_GIF = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")

# Every header costs the server time on the hot path; these are the ones
# that keep clients and proxies from caching a hit away.
NO_CACHE = [
    (b"cache-control", b"no-store, no-cache, must-revalidate, max-age=0, private"),
    (b"pragma", b"no-cache"),
    (b"expires", b"0"),
]
PIXEL_HEADERS = [
    (b"content-type", b"image/gif"),
    (b"content-length", str(len(TRANSPARENT_GIF)).encode()),
    *NO_CACHE,
]
# Pages and redirects: also keep the token out of Referer headers and indexes.
PAGE_HEADERS = [*NO_CACHE, (b"referrer-policy", b"no-referrer"), (b"x-robots-tag", b"noindex")]
UNAVAILABLE_BODY = (
    b"<!doctype html><meta charset=utf-8><title>Try again</title>"
    b"<p>This link cannot be opened right now. Please try again in a moment.</p>"
)
NOT_FOUND_BODY = (
    b"<!doctype html><meta charset=utf-8><title>Link not valid</title>"
    b"<p>This link is not valid. It may have been copied incompletely.</p>"
)
# Characters a Location header may carry as they are; everything else is
# percent-encoded, so a destination can never inject a header.
LOCATION_SAFE = "!#$%&'()*+,-./:;=?@[]_~"


class Networks(Protocol):
    """Where the collector gets its network table: store.networks.NetworkSource, which
    picks up refreshed lists, or a fixed NetworkTable."""

    def current(self) -> NetworkTable: ...


def location_header(url: str) -> bytes:
    """The destination as a header value: ASCII only, no controls, no spaces."""
    return quote(url, safe=LOCATION_SAFE).encode("ascii")


def _agent_and_prefetch(scope: Scope) -> tuple[str, bool]:
    """The user agent and whether the request says it is a prefetch, in one pass."""
    agent = b""
    prefetch = False
    for key, value in scope["headers"]:
        if key == b"user-agent":
            agent = value
        elif key in (b"sec-purpose", b"purpose"):
            lowered = value.lower()
            prefetch = prefetch or b"prefetch" in lowered or b"prerender" in lowered
    return agent[:MAX_USER_AGENT].decode("latin-1"), prefetch


class Collector:
    """ASGI app answering /o/<token>.gif and /c/<token>; everything else goes to `app`.

    With a path prefix (PUBLIC_URL = https://example.com/mb), hits are answered
    at /mb/o/... as the mail says, and also at /o/... for a proxy that strips
    the prefix before passing requests on: a pixel in sent mail must keep
    working whichever way the proxy is set up, now or after it changes.
    """

    def __init__(
        self,
        keys: KeyRing,
        hits: HitLog,
        app: ASGIApp,
        prefix: str = "",
        links: StoredLinks | None = None,
        networks: Networks | None = None,
    ) -> None:
        self.keys = keys
        self.hits = hits
        self.app = app
        self.prefix = prefix
        self.prefixed = prefix + "/"
        self.links = links
        self.networks: Networks = networks if networks is not None else NetworkTable.empty()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if self.prefix and path.startswith(self.prefixed):
                path = path[len(self.prefix) :]
            if path.startswith(OPEN_PREFIX):
                await self._open(scope, send, path[len(OPEN_PREFIX) :])
                return
            if path.startswith(CLICK_PREFIX):
                await self._click(scope, send, path[len(CLICK_PREFIX) :])
                return
        await self.app(scope, receive, send)

    async def _open(self, scope: Scope, send: Send, tail: str) -> None:
        token = tail.removesuffix(".gif")
        try:
            verified = self.keys.verify(token, TokenKind.OPEN)
        except InvalidToken:
            verified = None
        if verified is not None:
            await self._record(scope, HitKind.OPEN, verified.message_id, verified.recipient_id)
        await send({"type": "http.response.start", "status": 200, "headers": PIXEL_HEADERS})
        body = b"" if scope["method"] == "HEAD" else TRANSPARENT_GIF
        await send({"type": "http.response.body", "body": body})

    async def _click(self, scope: Scope, send: Send, token: str) -> None:
        try:
            verified = self.keys.verify(token, TokenKind.CLICK)
        except InvalidToken:
            await self._not_found(scope, send)
            return
        url = verified.url
        if verified.needs_stored_url:
            # A long link: its token names the stored link and signs the URL's digest.
            try:
                stored = await self._stored_url(verified.message_id, verified.link_id)
            except Exception:
                log.exception("link %s could not be loaded", verified.link_id)
                await self._page(scope, send, 503, UNAVAILABLE_BODY, [(b"retry-after", b"5")])
                return
            if stored is None or not verified.covers(stored):
                await self._not_found(scope, send)
                return
            url = stored
        try:
            location = location_header(url)
        except UnicodeEncodeError:
            await self._not_found(scope, send)
            return
        await self._record(
            scope, HitKind.CLICK, verified.message_id, verified.recipient_id, verified.link_id
        )
        headers = [(b"location", location), (b"content-length", b"0"), *PAGE_HEADERS]
        await send({"type": "http.response.start", "status": 302, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def _stored_url(self, message_id: int, link_id: int) -> str | None:
        if self.links is None:
            return None
        return await self.links.url(message_id, link_id)

    async def _not_found(self, scope: Scope, send: Send) -> None:
        await self._page(scope, send, 404, NOT_FOUND_BODY)

    async def _page(
        self,
        scope: Scope,
        send: Send,
        status: int,
        page: bytes,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-length", str(len(page)).encode()),
            *PAGE_HEADERS,
            *(extra or []),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        body = b"" if scope["method"] == "HEAD" else page
        await send({"type": "http.response.body", "body": body})

    async def _record(
        self,
        scope: Scope,
        kind: HitKind,
        message_id: int,
        recipient_id: int,
        link_id: int | None = None,
    ) -> None:
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            return
        client = scope.get("client")
        address = client[0] if client else ""
        user_agent, prefetch = _agent_and_prefetch(scope)
        hit = Hit(
            hit_id=new_hit_id(),
            received_at=datetime.now(UTC),
            kind=kind,
            message_id=message_id,
            recipient_id=recipient_id,
            link_id=link_id,
            method=method,
            prefetch=prefetch,
            # The network is looked up on the full address, before it is truncated;
            # only the tag is kept (core.networks).
            ip=truncate_ip(address) if address else "",
            user_agent=user_agent,
            network=self.networks.current().tag_of(address) if address else "",
        )
        try:
            await self.hits.record(hit)
        except Exception:
            # Rule 1 wins: the reader still gets the GIF or the redirect.
            log.exception("hit %s could not be recorded anywhere", hit.hit_id)
