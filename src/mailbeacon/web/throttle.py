"""Slowing down password guessing at the sign-in form.

Failures are counted per (client network, email) and per client network in a
sliding window; past either limit, sign-in from there is refused until the
oldest failure leaves the window, even with the right password. The client
is the request's: behind a reverse proxy that is the address resolved from
the forwarding headers of MAILBEACON_TRUSTED_PROXIES (mailbeacon.proxy), and
without that setting it would be the proxy's, so that anyone's wrong
passwords would lock everybody out. Kept in
memory: one web process is the embedded deployment; behind a load balancer
each process counts its own (noted in the README).
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable

WINDOW_SECONDS = 15 * 60
PER_ACCOUNT = 5  # failures per email from one network
PER_NETWORK = 30  # failures per network, across emails


class LoginThrottle:
    """Counts failed sign-ins and says how long a caller must wait."""

    def __init__(
        self,
        *,
        window: float = WINDOW_SECONDS,
        per_account: int = PER_ACCOUNT,
        per_network: int = PER_NETWORK,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window = window
        self._limits = {"account": per_account, "network": per_network}
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)

    def _keys(self, network: str, email: str) -> dict[str, tuple[str, str]]:
        return {"account": (network, email.strip().lower()), "network": (network, "")}

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        failures = self._failures[key]
        horizon = self._clock() - self._window
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return deque()
        return failures

    def wait_seconds(self, network: str, email: str) -> float:
        """0 when a sign-in may be tried now, else how long until it may."""
        wait = 0.0
        for kind, key in self._keys(network, email).items():
            failures = self._recent(key)
            if len(failures) >= self._limits[kind]:
                wait = max(wait, failures[0] + self._window - self._clock())
        return wait

    def failed(self, network: str, email: str) -> None:
        now = self._clock()
        for key in self._keys(network, email).values():
            self._failures[key].append(now)

    def succeeded(self, network: str, email: str) -> None:
        """A right password clears that account's count (not the network's)."""
        self._failures.pop(self._keys(network, email)["account"], None)
