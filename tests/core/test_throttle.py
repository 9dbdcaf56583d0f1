"""Sign-in throttling: limits per account and per network, sliding window."""

from __future__ import annotations

from mailbeacon.web.throttle import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_account_is_locked_after_its_limit_then_released() -> None:
    clock = Clock()
    throttle = LoginThrottle(window=60, per_account=3, per_network=100, clock=clock)
    for _ in range(3):
        assert throttle.wait_seconds("203.0.113.0", "Ann@example.com") == 0
        throttle.failed("203.0.113.0", "ann@example.com")
        clock.now += 1
    assert throttle.wait_seconds("203.0.113.0", "ann@example.com") == 57
    assert throttle.wait_seconds("203.0.113.0", "bo@example.com") == 0  # other accounts
    assert throttle.wait_seconds("198.51.100.0", "ann@example.com") == 0  # other networks
    clock.now += 57
    assert throttle.wait_seconds("203.0.113.0", "ann@example.com") == 0


def test_network_limit_spans_accounts() -> None:
    clock = Clock()
    throttle = LoginThrottle(window=60, per_account=100, per_network=4, clock=clock)
    for n in range(4):
        throttle.failed("203.0.113.0", f"user{n}@example.com")
    assert throttle.wait_seconds("203.0.113.0", "someone@example.com") == 60


def test_success_clears_the_account_count() -> None:
    throttle = LoginThrottle(window=60, per_account=2, per_network=100, clock=Clock())
    throttle.failed("n", "a@example.com")
    throttle.succeeded("n", "a@example.com")
    throttle.failed("n", "a@example.com")
    assert throttle.wait_seconds("n", "a@example.com") == 0
