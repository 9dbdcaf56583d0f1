"""Noting the sender's own browsers as they use the app (B2).

At sign-in and on signed-in page loads the browser's user agent and truncated
network go into `user_devices`, so the processor can label hits from them
"you". The client address is the one the app already trusts (`request.client`,
resolved from forwarding headers only for MAILBEACON_TRUSTED_PROXIES, see
mailbeacon.proxy). Writes are throttled to one per session per ten minutes,
counted in memory per web process: a page load costs a dictionary lookup,
and `last_seen_at` is still fresh to the quarter hour. A failed write is
logged and skipped: a page never fails because a device could not be noted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import Request
from sqlalchemy.exc import SQLAlchemyError

from mailbeacon.core.hits import truncate_ip
from mailbeacon.store.db import sessions
from mailbeacon.store.devices import remember_device

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 10 * 60
MAX_SESSIONS = 10_000  # remembered sessions per process; the oldest are dropped past it


class DeviceThrottle:
    """Says whether a session's device is due to be written again."""

    def __init__(
        self, interval: float = INTERVAL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}

    def due(self, session_hash: str, *, force: bool = False) -> bool:
        """True (and noted) when this session was not written within the interval."""
        now = self._clock()
        last = self._last.get(session_hash)
        if not force and last is not None and now - last < self._interval:
            return False
        self._last.pop(session_hash, None)
        self._last[session_hash] = now  # insertion order is age order
        while len(self._last) > MAX_SESSIONS:
            del self._last[next(iter(self._last))]
        return True


def client_device(request: Request) -> tuple[str, str]:
    """(user agent, truncated network) of the request's trusted client address."""
    host = request.client.host if request.client else ""
    return request.headers.get("user-agent", ""), truncate_ip(host)


async def note_device(
    request: Request, user_id: int, session_hash: str, *, force: bool = False
) -> None:
    """Record the request's browser as one of the user's devices, when due."""
    throttle: DeviceThrottle | None = getattr(request.app.state, "device_throttle", None)
    if throttle is None:
        throttle = request.app.state.device_throttle = DeviceThrottle()
    if not throttle.due(session_hash, force=force):
        return
    user_agent, network = client_device(request)
    try:
        async with sessions(request.app.state.runtime.engine)() as db, db.begin():
            await remember_device(db, user_id, user_agent, network, datetime.now(UTC))
    except (SQLAlchemyError, OSError):
        log.warning("could not note a device of user %s", user_id, exc_info=True)
