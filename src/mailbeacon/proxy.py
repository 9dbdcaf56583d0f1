"""The client address behind trusted reverse proxies, for the collector and the web app alike.

`TrustedProxies` sits in front of everything and rewrites the ASGI scope's
`client` (and `scheme`, from X-Forwarded-Proto) when, and only when, the
connection comes from a proxy listed in MAILBEACON_TRUSTED_PROXIES. Hits then
record the reader's network and sign-in throttling counts the person guessing,
not the proxy. It is installed only when that setting is not empty, so the
default deployment pays nothing on the hot path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from mailbeacon.core.forwarded import (
    Network,
    ProxyHeader,
    client_address,
    forwarded_chain,
    is_trusted,
    x_forwarded_for_chain,
)

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


class TrustedProxies:
    """ASGI layer: believe forwarding headers from trusted peers only, right-most first."""

    def __init__(
        self,
        app: ASGIApp,
        trusted: Sequence[Network],
        header: ProxyHeader = ProxyHeader.X_FORWARDED_FOR,
    ) -> None:
        self.app = app
        self.trusted = tuple(trusted)
        self.header = header.value.encode("latin-1")
        forwarded = header is ProxyHeader.FORWARDED
        self.chain = forwarded_chain if forwarded else x_forwarded_for_chain

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        client = scope.get("client")
        if scope["type"] == "http" and client and is_trusted(client[0], self.trusted):
            scope = self._resolved(scope, client)
        await self.app(scope, receive, send)

    def _resolved(self, scope: Scope, client: tuple[str, int]) -> Scope:
        values: list[str] = []
        proto = b""
        for key, value in scope["headers"]:
            if key == self.header:
                values.append(value.decode("latin-1"))
            elif key == b"x-forwarded-proto":
                proto = value.rsplit(b",", 1)[-1].strip().lower()
        resolved = dict(scope)
        if values:
            host = client_address(client[0], self.chain(values), self.trusted)
            # The port is the proxy's, not the client's: nobody downstream may trust it.
            resolved["client"] = (host, 0)
        if proto in (b"http", b"https"):
            resolved["scheme"] = proto.decode("ascii")
        return resolved
