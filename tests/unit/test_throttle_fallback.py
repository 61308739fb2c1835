"""The sign-in throttle's per-process fallback (used while Redis is down): counts, gives back, stays bounded;
and what it counts as one client."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from controlplane.core.auth.throttle import LocalWindows, SignInThrottle, TooManyAttempts


def test_the_fallback_counts_each_key_in_its_window_and_gives_back_a_reservation() -> None:
    windows = LocalWindows()
    keys = ("account:a", "address:1")
    assert windows.count(keys, 900)[0][0] == 1
    counted = windows.count(keys, 900)
    assert [count for count, _ in counted] == [2, 2]
    assert all(0 < left <= 900 for _, left in counted)
    windows.give_back(keys)
    assert [count for count, _ in windows.count(keys, 900)] == [2, 2]
    # Another account from the same address shares only the address counter.
    assert [count for count, _ in windows.count(("account:b", "address:1"), 900)] == [1, 3]


def test_an_ended_window_starts_again_from_one() -> None:
    windows = LocalWindows()
    windows.count(("k",), 0)
    assert windows.count(("k",), 0)[0][0] == 1


def test_a_flood_of_addresses_cannot_grow_the_fallback_past_its_bound() -> None:
    windows = LocalWindows(max_keys=100)
    for n in range(1000):
        windows.count((f"address:{n}",), 900)
    assert len(windows._windows) <= 100
    # The newest keys are kept (the oldest evicted first).
    assert "address:999" in windows._windows


async def test_an_ipv6_client_is_counted_by_its_64_not_by_each_address_it_rotates_through() -> None:
    unreachable = aioredis.from_url("redis://127.0.0.1:9", socket_connect_timeout=0.2)  # counted in-process
    throttle = SignInThrottle(unreachable, per_address=2)
    try:
        await throttle.reserve("a@example.com", "2001:db8:1:2::1")
        await throttle.reserve("b@example.com", "2001:db8:1:2::2")
        with pytest.raises(TooManyAttempts):
            await throttle.reserve("c@example.com", "2001:db8:1:2:ffff::3")
        await throttle.reserve("d@example.com", "2001:db8:1:3::1")  # another /64: another client
    finally:
        await unreachable.aclose()
