"""The web app under a path prefix (PUBLIC_URL = https://example.com/mailbeacon).

Handlers, templates' Python helpers and redirects speak in app paths
("/mail", "/login?next=/mail"). This layer is the one place that knows the
public prefix:

- a request arrives with the prefix (the proxy forwards it) or without it
  (the proxy strips it); either way the app sees the standard ASGI scope of a
  mounted app: `root_path` = the prefix, `path` = prefix + app path;
- a `Location` that is an app path gets the prefix, and so does the `Path`
  of every cookie, so the browser keeps addressing the public URL.

Templates put the prefix in front of their links themselves (`{{ root }}`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.requests import Request

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

COOKIE_PATH = re.compile(rb"(;\s*path=)([^;]*)", re.IGNORECASE)


def path_in_app(scope: Scope) -> str:
    """The path inside the app, without `root_path` (a public prefix) when it carries one."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root) :] or "/"
    return path


def app_path(request: Request) -> str:
    """The request's path inside the app, without any public prefix."""
    return path_in_app(request.scope)


class PublicPrefix:
    """ASGI layer: the app at `prefix` + path, and at the bare path for stripping proxies."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix
        self.raw_prefix = prefix.encode("ascii")

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(self._scoped(scope), receive, self._public_headers(send))

    def _scoped(self, scope: Scope) -> Scope:
        path: str = scope["path"]
        raw: bytes = scope.get("raw_path") or path.encode("utf-8")
        if path == self.prefix:  # https://example.com/mb is the app's home page too
            path, raw = path + "/", raw + b"/"
        elif not path.startswith(self.prefix + "/"):
            path, raw = self.prefix + path, self.raw_prefix + raw
        return {**scope, "root_path": self.prefix, "path": path, "raw_path": raw}

    def _public_headers(self, send: Any) -> Callable[[Message], Awaitable[None]]:
        async def send_public(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [self._header(k, v) for k, v in message.get("headers", [])]
            await send(message)

        return send_public

    def _header(self, name: bytes, value: bytes) -> tuple[bytes, bytes]:
        lowered = name.lower()
        if lowered == b"location" and value.startswith(b"/") and not value.startswith(b"//"):
            return name, self.raw_prefix + value
        if lowered == b"set-cookie":
            return name, COOKIE_PATH.sub(self._cookie_path, value, count=1)
        return name, value

    def _cookie_path(self, match: re.Match[bytes]) -> bytes:
        path = match.group(2).strip()
        return match.group(1) + self.raw_prefix + (b"" if path == b"/" else path)
