"""Small pure pieces of the service: the rate limiter's window, run slots, the SSRF address rules."""

from __future__ import annotations

import ipaddress

import pytest

from agent.http.limits import RateLimiter, RunSlots, TooManyRequests
from agent.http.ssrf import blocked_reason


def test_rate_limiter_window_slides_and_says_when_to_retry() -> None:
    now = [1000.0]
    limiter = RateLimiter(2, clock=lambda: now[0])
    limiter.hit("u")
    now[0] += 10
    limiter.hit("u")
    with pytest.raises(TooManyRequests) as caught:
        limiter.hit("u")
    assert caught.value.retry_after == 50  # the first hit leaves the window 60 s after it happened
    now[0] += 50.5
    limiter.hit("u")  # one slot free again
    limiter.hit("other")  # per key


def test_run_slots_count_per_user() -> None:
    slots = RunSlots(1)
    slots.acquire("a")
    with pytest.raises(TooManyRequests):
        slots.acquire("a")
    slots.acquire("b")
    slots.release("a")
    assert slots.active("a") == 0
    slots.acquire("a")


@pytest.mark.parametrize(
    ("address", "blocked"),
    [
        ("8.8.8.8", False),
        ("2606:4700:4700::1111", False),
        ("127.0.0.2", True),
        ("10.255.0.1", True),
        ("169.254.169.254", True),
        ("fd00::1", True),
        ("fe80::1", True),
        ("::ffff:10.0.0.1", True),
        ("100.100.100.100", True),
        ("224.0.0.1", True),
        ("0.0.0.0", True),
        ("192.0.2.1", True),  # documentation range: not public
    ],
)
def test_address_rules(address: str, blocked: bool) -> None:
    assert (blocked_reason(ipaddress.ip_address(address)) is not None) is blocked
