"""The rate limits' pure rules: settings parsed or refused, a tenant's percentage, route classes and headers."""

from __future__ import annotations

import pytest

from controlplane.core.ratelimit.limiter import address_key
from controlplane.core.ratelimit.policy import (
    Bucket,
    Buckets,
    BucketState,
    Limit,
    LimitClass,
    RateLimits,
    Subject,
    Verdict,
    headers,
    limit_class,
)
from controlplane.core.settings import Settings, SettingsError


def test_settings_read_each_class_for_a_client_and_for_a_tenant() -> None:
    settings = Settings.from_env({"RATE_LIMIT_READS": "7/70", "RATE_LIMIT_TENANT_WRITES": "3/9"})
    assert settings.rate_limit_enabled
    assert settings.rate_limits.for_client(LimitClass.READS) == Limit(7, 70)
    assert settings.rate_limits.for_tenant(LimitClass.WRITES, 100) == Limit(3, 9)
    assert settings.rate_limits.for_client(LimitClass.WRITES) == RateLimits().for_client(LimitClass.WRITES)
    assert not Settings.from_env({"RATE_LIMIT_ENABLED": "false"}).rate_limit_enabled


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RATE_LIMIT_READS", "10"),
        ("RATE_LIMIT_READS", "0/10"),
        ("RATE_LIMIT_READS", "10/0"),
        ("RATE_LIMIT_READS", "-1/10"),
        ("RATE_LIMIT_READS", "1.5/10"),
        ("RATE_LIMIT_READS", "2000000/10"),
        ("RATE_LIMIT_TENANT_ENTITLEMENTS", "ten/20"),
        # A full usage batch (1,000 events) must fit in the burst, or it could never pass.
        ("RATE_LIMIT_INGESTION", "100/999"),
        ("RATE_LIMIT_ENABLED", "maybe"),
    ],
)
def test_malformed_limits_stop_the_process_naming_the_setting(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_a_percentage_scales_a_tenant_and_its_keys_but_never_shrinks_an_ingestion_burst_below_a_batch() -> None:
    limits = RateLimits()
    assert limits.for_tenant(LimitClass.READS, 400) == Limit(400, 800)
    assert limits.for_api_key(LimitClass.READS, 50) == Limit(25, 50)
    assert limits.for_tenant(LimitClass.WRITES, 1) == Limit(0.4, 1)  # a burst never falls below one
    assert limits.for_api_key(LimitClass.INGESTION, 1).burst == 1000
    assert Limit(0.4, 1).interval_us == 2_500_000
    assert Limit(3, 10).window_seconds == 4


def test_a_route_class_comes_from_its_declaration_or_its_method() -> None:
    assert limit_class("GET", authenticated=False, declared="entitlements") is LimitClass.UNAUTHENTICATED
    assert limit_class("GET", authenticated=True, declared="entitlements") is LimitClass.ENTITLEMENTS
    assert limit_class("HEAD", authenticated=True, declared=None) is LimitClass.READS
    assert limit_class("DELETE", authenticated=True, declared=None) is LimitClass.WRITES


def test_headers_name_each_budget_with_its_quota_window_remaining_and_reset() -> None:
    buckets = Buckets((Bucket(Subject.API_KEY, "k", Limit(10, 20)), Bucket(Subject.TENANT, "t", Limit(100, 1000))))
    verdict = Verdict(True, 0.0, [BucketState(19, 0.1), BucketState(990, 0.11)])
    assert dict(headers(buckets, verdict)) == {
        b"ratelimit-policy": b'"api_key";q=20;w=2, "tenant";q=1000;w=10',
        b"ratelimit": b'"api_key";r=19;t=1, "tenant";r=990;t=1',
    }


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::ffff", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.9", "203.0.113.9"),  # an IPv4 client seen by a dual-stack server
        ("testclient", "testclient"),
    ],
)
def test_an_address_is_counted_alone_and_an_ipv6_one_by_its_64(host: str, key: str) -> None:
    assert address_key(host) == key


async def test_a_flood_of_new_addresses_and_tenant_paths_does_not_grow_a_process_by_tens_of_megabytes() -> None:
    """What the limiter keeps per address and per (person, tenant in the path) is bounded small: IPv6 gives one
    client millions of /64s, and a person may name any tenant id in a path."""
    import tracemalloc
    import uuid

    import redis.asyncio as aioredis

    from controlplane.core.auth.principal import Principal
    from controlplane.core.ratelimit.limiter import RateLimiter
    from controlplane.core.ratelimit.store import GcraStore

    async def percent(_: uuid.UUID) -> int:
        return 100

    async def member_of(_: Principal, __: uuid.UUID) -> bool:
        return False

    limiter = RateLimiter(GcraStore(aioredis.Redis()), RateLimits(), percent, member_of)
    person = Principal(kind="user", id=uuid.uuid4())
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(12_000):
            await limiter.buckets(None, LimitClass.UNAUTHENTICATED, address=f"2001:db8:{n:x}::1", tenant_in_path=None)
            await limiter.buckets(person, LimitClass.READS, address="203.0.113.1", tenant_in_path=uuid.uuid4())
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 5 * 2**20, f"{grown / 2**20:.1f} MiB"  # was 11 MiB, and 90 at 100,000 of each
