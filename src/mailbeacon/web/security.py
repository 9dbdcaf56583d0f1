"""Security headers for every page and API answer (not for the collector's hits)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from mailbeacon.web.prefix import path_in_app

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]

# Mail shown in the outbox and message view lives in sandboxed srcdoc frames
# that inherit this policy: images may load from anywhere (the pixel), scripts
# only from us, and mail cannot run any.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src * data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; frame-src 'self'; frame-ancestors 'self'; base-uri 'none'; "
    "form-action 'self'; object-src 'none'"
)
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"referrer-policy", b"same-origin"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
]


# Pages and API answers hold one user's data (S7): no browser or proxy keeps a copy,
# so the back button after signing out, or the next user of a shared computer, finds
# nothing. Only our static files (the same for everyone) may be cached.
NO_STORE = (b"cache-control", b"no-store")
CACHEABLE_PREFIX = "/static/"


class SecurityHeaders:
    """A bare ASGI middleware: adds the headers, leaves streaming (SSE) alone."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        cacheable = path_in_app(scope).startswith(CACHEABLE_PREFIX)
        wanted = HEADERS if cacheable else [*HEADERS, NO_STORE]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in wanted if n not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


MAX_BODY_BYTES = 12 * 1024 * 1024  # an email body may be 5 MB of text, form-encoded
# Without a valid session or API token only small bodies are read: the sign-in form
# is well under this. Nobody unknown makes the process buffer megabytes.
ANONYMOUS_BODY_BYTES = 64 * 1024
# Up to this much of a refused body is read and dropped, so that a signed-in client,
# still sending, gets to read the 413 instead of a reset connection.
DRAIN_BYTES = 64 * 1024 * 1024
TOO_LARGE = b"Request body too large"

Authenticated = Callable[[Scope], Awaitable[bool]]


class BodyLimit:
    """Refuses request bodies over a limit with 413, before anything parses them.

    Bodies up to `anonymous_bytes` pass at once. A larger one (or a chunked one,
    whose size is unknown) is read only when the request carries a valid session
    or API token (`authenticated`, one indexed lookup); anyone else gets the 413
    before a byte of the body is read. A declared Content-Length over `max_bytes`
    is refused at once. A chunked body is read into memory up to its limit first
    and only then handed on, so neither kind can fill the memory of the process
    that also answers every tracking pixel.
    """

    def __init__(
        self,
        app: ASGIApp,
        authenticated: Authenticated,
        *,
        max_bytes: int = MAX_BODY_BYTES,
        anonymous_bytes: int = ANONYMOUS_BODY_BYTES,
    ) -> None:
        self.app = app
        self.authenticated = authenticated
        self.max_bytes = max_bytes
        self.anonymous_bytes = anonymous_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        if length is not None:
            if not length.isdigit():
                await _refuse(send)
                return
            size = int(length)
            if size <= self.anonymous_bytes:
                await self.app(scope, receive, send)
                return
            if not await self.authenticated(scope):
                await _refuse(send)  # the body is never read
                return
            if size > self.max_bytes:
                if size <= DRAIN_BYTES:
                    await _drain(receive, DRAIN_BYTES)
                await _refuse(send)
                return
            await self.app(scope, receive, send)
            return
        if not chunked:
            await self.app(scope, receive, send)
            return
        signed_in = await self.authenticated(scope)
        limit = self.max_bytes if signed_in else self.anonymous_bytes
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            if len(body) > limit:
                if signed_in:
                    await _drain(receive, DRAIN_BYTES - len(body))
                await _refuse(send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                after: Message = await receive()  # only ever http.disconnect now
                return after
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)


async def _drain(receive: Any, limit: int) -> None:
    """Read and drop the rest of a body, up to `limit` bytes."""
    drained = 0
    while drained <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _refuse(send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(TOO_LARGE)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": TOO_LARGE})
