"""Refusing input no handler can use, at the door, before any route sees it (DESIGN rule 6).

- NUL anywhere in the path, the query string or a form-encoded body: no text
  column accepts it (PostgreSQL refuses it outright, so a search, a contact
  page or the sign-in email containing %00 was a 500), and no email may carry it.
- A path segment of more digits than any 64-bit id has: Starlette's `:int`
  converter would call int() on it and fail past Python's 4,300-digit limit.
  Such a segment names nothing: 404.

The refusal is the app's own error page (or JSON under /api/), in the
visitor's language.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from mailbeacon.web.inputs import MAX_ID_DIGITS
from mailbeacon.web.prefix import path_in_app

Scope = MutableMapping[str, Any]
ErrorPage = Callable[[Request, int, str], Awaitable[Response]]

FORM_TYPE = b"application/x-www-form-urlencoded"
_LONG_NUMBER = re.compile(rf"/[0-9]{{{MAX_ID_DIGITS + 1},}}(?=/|$)")
NUL_MESSAGE = "the request contains a NUL character, which no field accepts"


def _has_nul(data: bytes) -> bool:
    return b"\x00" in data or b"%00" in data


class InputGuard:
    """A bare ASGI middleware in front of the FastAPI app (it renders the app's error pages)."""

    def __init__(self, app: FastAPI, error_page: ErrorPage) -> None:
        self.app = app
        self.error_page = error_page

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if "\x00" in path or _has_nul(scope.get("query_string", b"")):
            await self._refuse(scope, receive, send, 400, "nul")
            return
        if _LONG_NUMBER.search(path):
            await self._refuse(scope, receive, send, 404, "http")
            return
        content_type = dict(scope["headers"]).get(b"content-type", b"")
        if not content_type.lower().startswith(FORM_TYPE):
            await self.app(scope, receive, send)
            return
        # Form bodies are read whole here (BodyLimit has already bounded them) and handed on.
        body, ended = await _read_body(receive)
        if not ended:
            return  # the client went away
        if _has_nul(body):
            await self._refuse(scope, receive, send, 400, "nul")
            return
        await self.app(scope, _replay(body, receive), send)

    async def _refuse(self, scope: Scope, receive: Any, send: Any, status: int, kind: str) -> None:
        response: Response
        if path_in_app(scope).startswith("/api/"):
            detail = NUL_MESSAGE if kind == "nul" else "Not Found"
            response = JSONResponse({"detail": detail}, status_code=status)
        else:
            request = Request({**scope, "app": self.app}, receive)  # as FastAPI would set it
            response = await self.error_page(request, status, kind)
        await response(scope, receive, send)


async def _read_body(receive: Any) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"", False
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes, receive: Any) -> Callable[[], Awaitable[dict[str, Any]]]:
    replayed = False

    async def replay() -> dict[str, Any]:
        nonlocal replayed
        if replayed:
            after: dict[str, Any] = await receive()  # only ever http.disconnect now
            return after
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
