"""Rate limits per API key, tenant, person and address: refused at the budget, never another tenant's; headers on
every limited response; one budget across API processes; reads served and writes refused while Redis is down."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from httpx import ASGITransport, AsyncClient
from litestar import Litestar
from prometheus_client import REGISTRY
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from controlplane.core.ratelimit.policy import Bucket, Buckets, Limit, LimitClass, Subject
from controlplane.core.ratelimit.refusals import STREAKS_KEY
from controlplane.core.ratelimit.store import KEY_PREFIX, GcraStore, LimiterUnavailable
from tests.api._helpers import assert_problem, create_api_key
from tests.api._rate_limits import SLOW, limiter_of, redis_unreachable, refusals, unavailable
from tests.api.billing._support import event, metric, plan, post_usage, subscribe
from tests.factories import Actor, Factory


async def _tenant_with_key(client: AsyncClient, factory: Factory, staff: Actor) -> tuple[str, dict[str, str]]:
    tenant = await factory.tenant(staff)
    _, secret = await create_api_key(client, staff.headers, tenant["id"])
    return tenant["id"], {"Authorization": f"Bearer {secret}"}


async def test_a_burst_on_one_key_is_refused_at_its_budget_while_another_tenant_is_served(
    client: AsyncClient, factory: Factory, limits: Any
) -> None:
    staff = await factory.staff()
    noisy, noisy_key = await _tenant_with_key(client, factory, staff)
    quiet, quiet_key = await _tenant_with_key(client, factory, staff)
    limits(LimitClass.READS, client=SLOW)
    before = refusals("/v1/tenants/{tenant_id}", "reads", "api_key")

    noisy_answers, quiet_answers = [], []
    for round_ in range(30):  # concurrently: the quiet tenant's requests (within its budget) race the flood
        flood = [client.get(f"/v1/tenants/{noisy}", headers=noisy_key) for _ in range(2)]
        if round_ % 4 == 0:
            *answers, quiet_answer = await asyncio.gather(*flood, client.get(f"/v1/tenants/{quiet}", headers=quiet_key))
            quiet_answers.append(quiet_answer)
        else:
            answers = await asyncio.gather(*flood)
        noisy_answers += answers

    served = [r for r in noisy_answers if r.status_code == 200]
    refused = [r for r in noisy_answers if r.status_code == 429]
    assert len(served) + len(refused) == 60
    assert 10 <= len(served) <= 11, len(served)  # the burst, plus at most the one unit a second gives back
    body = assert_problem(refused[0], 429, "rate_limited")
    assert int(refused[0].headers["Retry-After"]) >= 1
    assert body["retry_after_seconds"] == int(refused[0].headers["Retry-After"])
    assert refused[0].headers["RateLimit-Policy"] == '"api_key";q=10;w=10, "tenant";q=100000000;w=100'
    assert refused[0].headers["RateLimit"].startswith('"api_key";r=0;t=')
    # Successes carry what is left: counting down from the burst.
    # (Two requests at a time: which of a pair the limiter counted first is not the order they were sent in.)
    left = sorted(int(r.headers["RateLimit"].split(";r=")[1].split(";")[0]) for r in served)
    assert left[-10:] == list(range(10)), left
    assert [r.status_code for r in quiet_answers] == [200] * 8
    assert refusals("/v1/tenants/{tenant_id}", "reads", "api_key") == before + len(refused)


async def test_the_tenant_budget_is_shared_by_its_keys_and_members_but_not_spent_by_strangers_or_staff(
    client: AsyncClient, factory: Factory, limits: Any
) -> None:
    staff = await factory.staff()
    tenant, first_key = await _tenant_with_key(client, factory, staff)
    _, second_secret = await create_api_key(client, staff.headers, tenant, name="second")
    second_key = {"Authorization": f"Bearer {second_secret}"}
    admin = await factory.member(tenant)
    stranger = await factory.user()
    limits(LimitClass.READS, tenant=SLOW)

    # A stranger and staff hammering the tenant's path spend their own budgets, not the tenant's.
    await asyncio.gather(*(client.get(f"/v1/tenants/{tenant}", headers=stranger.headers) for _ in range(20)))
    await asyncio.gather(*(client.get(f"/v1/tenants/{tenant}", headers=staff.headers) for _ in range(20)))
    answers = []
    for headers in (first_key, second_key, admin.headers) * 5:
        answers.append(await client.get(f"/v1/tenants/{tenant}", headers=headers))
    codes = [r.status_code for r in answers]
    assert 10 <= codes.count(200) <= 11, codes
    assert codes[:10] == [200] * 10
    refusal = next(r for r in answers if r.status_code == 429)
    assert '"tenant";r=0' in refusal.headers["RateLimit"]


async def test_the_budget_comes_back_with_time(client: AsyncClient, factory: Factory, limits: Any) -> None:
    staff = await factory.staff()
    tenant, key = await _tenant_with_key(client, factory, staff)
    # Five at once, one more every half second: the six requests below take far less than that, even on a busy
    # machine (at 20 a second, a slow moment gave the sixth its token back and it passed).
    limits(LimitClass.READS, client=Limit(2, 5))
    first = [await client.get(f"/v1/tenants/{tenant}", headers=key) for _ in range(6)]
    assert [r.status_code for r in first] == [200] * 5 + [429]
    await asyncio.sleep(2.6)  # all five back
    again = [await client.get(f"/v1/tenants/{tenant}", headers=key) for _ in range(5)]
    assert [r.status_code for r in again] == [200] * 5


async def test_usage_ingestion_is_counted_in_events_and_a_refused_batch_stores_nothing(
    client: AsyncClient, factory: Factory, limits: Any
) -> None:
    staff = await factory.staff()
    tenant, key = await _tenant_with_key(client, factory, staff)
    await metric(client, staff.headers, "api_calls")
    await plan(
        client,
        staff.headers,
        "metered",
        [{"type": "metered", "metric_code": "api_calls", "model": "per_unit", "unit_amount_minor": "1"}],
    )
    await subscribe(client, staff.headers, tenant, "metered")
    limits(LimitClass.INGESTION, client=Limit(1, 1000))

    batch = [event(f"a-{n}", "api_calls") for n in range(600)]
    accepted = await post_usage(client, key, batch)
    assert accepted.status_code == 200, accepted.text
    assert accepted.headers["RateLimit"].startswith('"api_key";r=400;')
    refused = await post_usage(client, key, [event(f"b-{n}", "api_calls") for n in range(600)])
    assert_problem(refused, 429, "rate_limited")
    assert int(refused.headers["Retry-After"]) >= 200  # 200 events short, at one a second
    # The refused request spent only its one unit at the door: 399 events still fit.
    fits = await post_usage(client, key, [event(f"c-{n}", "api_calls") for n in range(399)])
    assert fits.status_code == 200, fits.text
    usage = (await client.get(f"/v1/tenants/{tenant}/usage", headers=staff.headers)).json()
    assert [m["value"] for m in usage["metrics"] if m["metric_code"] == "api_calls"] == ["999"]


async def test_unauthenticated_routes_are_limited_per_client_address(app: Litestar, limits: Any) -> None:
    limits(LimitClass.UNAUTHENTICATED, client=Limit(1, 3))

    def from_address(host: str) -> AsyncClient:
        return AsyncClient(transport=ASGITransport(app=app, client=(host, 5000)), base_url="http://testserver")

    async with from_address("203.0.113.7") as flooding, from_address("198.51.100.1") as other:
        flood = [(await flooding.get("/health/live")).status_code for _ in range(5)]
        assert flood == [200, 200, 200, 429, 429]
        assert (await other.get("/health/live")).status_code == 200
    # An IPv6 client is counted by its /64: another address of the same /64 shares the budget.
    async with from_address("2001:db8::1") as one, from_address("2001:db8::ffff") as same_net:
        codes = [(await one.get("/health/live")).status_code for _ in range(3)]
        codes.append((await same_net.get("/health/live")).status_code)
        assert codes == [200, 200, 200, 429]


async def test_failed_authentications_spend_the_address_budget_and_then_refuse_it_before_any_lookup(
    app: Litestar, client: AsyncClient, factory: Factory, limits: Any
) -> None:
    staff = await factory.staff()
    tenant, key = await _tenant_with_key(client, factory, staff)
    limits(LimitClass.UNAUTHENTICATED, client=Limit(1, 3))
    wrong = {"Authorization": f"Bearer cpk_{uuid.uuid4().hex}_{uuid.uuid4().hex}_{'x' * 43}"}

    def from_address(host: str) -> AsyncClient:
        return AsyncClient(transport=ASGITransport(app=app, client=(host, 5000)), base_url="http://testserver")

    async with from_address("203.0.113.50") as guessing, from_address("198.51.100.50") as honest:
        codes = [(await guessing.get(f"/v1/tenants/{tenant}", headers=wrong)).status_code for _ in range(5)]
        assert codes == [401, 401, 401, 429, 429]
        # Refused before its credentials are looked up: even a good key from that address, for now.
        blocked = await guessing.get(f"/v1/tenants/{tenant}", headers=key)
        assert_problem(blocked, 429, "rate_limited")
        assert int(blocked.headers["Retry-After"]) >= 1
        # Another address is unaffected, with wrong credentials or good ones.
        assert (await honest.get(f"/v1/tenants/{tenant}", headers=wrong)).status_code == 401
        assert (await honest.get(f"/v1/tenants/{tenant}", headers=key)).status_code == 200


async def test_without_redis_reads_are_served_and_writes_refused_with_a_named_503(
    app: Litestar, client: AsyncClient, factory: Factory, limits: Any
) -> None:
    staff = await factory.staff()
    tenant, key = await _tenant_with_key(client, factory, staff)
    limits(LimitClass.READS, client=SLOW)
    served_before, refused_before = unavailable("served"), unavailable("refused")
    with redis_unreachable(limiter_of(app)):
        reads = [await client.get(f"/v1/tenants/{tenant}", headers=key) for _ in range(15)]
        write = await client.post(
            f"/v1/tenants/{tenant}/api-keys", json={"name": "x", "role": "tenant_admin"}, headers=key
        )
        usage = await post_usage(client, key, [event("k", "api_calls")])
        limits_view = await client.get(f"/v1/tenants/{tenant}/limits", headers=staff.headers)
    assert [r.status_code for r in reads] == [200] * 15  # beyond the budget: nothing counts them
    assert "RateLimit" not in reads[0].headers
    for refused in (write, usage):
        body = assert_problem(refused, 503, "rate_limiter_unavailable")
        assert int(refused.headers["Retry-After"]) == body["retry_after_seconds"] > 0
    assert_problem(limits_view, 503, "rate_limiter_unavailable")
    assert unavailable("served") >= served_before + 15
    assert unavailable("refused") >= refused_before + 2
    # Nothing was written by the refused requests.
    keys = (await client.get(f"/v1/tenants/{tenant}/api-keys", headers=staff.headers)).json()
    assert [k["name"] for k in keys["items"]] == ["ci"]
    # Back: limited again at once.
    assert (await client.get(f"/v1/tenants/{tenant}", headers=key)).headers["RateLimit"].startswith('"api_key"')


async def test_a_plan_and_a_staff_override_set_the_tenant_limits(
    client: AsyncClient, factory: Factory, limits: Any
) -> None:
    staff = await factory.staff()
    tenant, key = await _tenant_with_key(client, factory, staff)
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 100}], rate_limit_percent=400)
    limits(LimitClass.READS, client=Limit(1, 5), tenant=Limit(2, 10))

    default = (await client.get(f"/v1/tenants/{tenant}/limits", headers=key)).json()
    assert default["rate_limit_percent"] == 100
    reads = next(view for view in default["limits"] if view["limit_class"] == "reads")
    assert (reads["per_second"], reads["burst"], reads["api_key_burst"]) == (2, 10, 5)

    await subscribe(client, staff.headers, tenant, "pro")
    scaled = (await client.get(f"/v1/tenants/{tenant}/limits", headers=key)).json()
    assert scaled["rate_limit_percent"] == 400
    reads = next(view for view in scaled["limits"] if view["limit_class"] == "reads")
    assert (reads["per_second"], reads["burst"], reads["api_key_burst"]) == (8, 40, 20)
    assert reads["remaining"] < 40  # this tenant's reads so far are spent from it

    override = await client.put(
        f"/v1/tenants/{tenant}/rate-limit-override", json={"rate_limit_percent": 20}, headers=staff.headers
    )
    assert override.status_code == 200, override.text
    # Staff read it (the key's own budget may be spent by now): the new percentage at once, evicted everywhere.
    lowered = (await client.get(f"/v1/tenants/{tenant}/limits", headers=staff.headers)).json()
    assert lowered["rate_limit_percent"] == 20
    # The key's budget is now 1 (5 at 20 %): the next read is refused.
    assert_problem(await client.get(f"/v1/tenants/{tenant}", headers=key), 429, "rate_limited")


async def test_concurrent_requests_never_spend_a_bucket_past_its_burst(app: Litestar) -> None:
    """Hundreds of checks at once (batched into a few script calls): exactly the burst passes."""
    store = limiter_of(app).store
    bucket = Buckets((Bucket(Subject.TENANT, f"{KEY_PREFIX}test:{uuid.uuid4()}", Limit(1, 50)),))
    verdicts = await asyncio.gather(*(store.spend(bucket) for _ in range(300)))
    assert sum(v.allowed for v in verdicts) == 50
    assert sorted({v.states[0].remaining for v in verdicts if v.allowed}) == list(range(50))
    # A costlier check that does not fit spends nothing: a unit is still there for a single one.
    cheap = Buckets((Bucket(Subject.TENANT, f"{KEY_PREFIX}test:{uuid.uuid4()}", Limit(1, 10)),))
    assert not (await store.spend(cheap, cost=11)).allowed
    assert (await store.spend(cheap, cost=10)).allowed


async def test_a_tenant_refused_without_a_break_shows_in_the_longest_refusal_gauge(
    app: Litestar, client: AsyncClient, factory: Factory, limits: Any, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    tenant, key = await _tenant_with_key(client, factory, staff)
    limits(LimitClass.READS, client=Limit(1, 1))
    redis_client = aioredis.from_url(stack_env["REDIS_URL"])
    try:
        # As if the tenant's refusals had begun eleven minutes ago and never stopped.
        now = int(time.time() * 1e6)
        await redis_client.hset(STREAKS_KEY, tenant, f"{now - 660 * 10**6}:{now}")
        answers = [await client.get(f"/v1/tenants/{tenant}", headers=key) for _ in range(3)]
        assert [r.status_code for r in answers] == [200, 429, 429]
        streaks = limiter_of(app).streaks
        assert streaks is not None
        await streaks.refresh_gauge()
        assert REGISTRY.get_sample_value("controlplane_rate_limit_longest_refusal_seconds") >= 660
        # A streak whose last refusal is over a minute old has ended: dropped, and the gauge falls.
        await redis_client.hset(STREAKS_KEY, tenant, f"{now - 900 * 10**6}:{now - 120 * 10**6}")
        await streaks.refresh_gauge()
        assert REGISTRY.get_sample_value("controlplane_rate_limit_longest_refusal_seconds") < 60
        assert not await redis_client.hexists(STREAKS_KEY, tenant)
    finally:
        await redis_client.aclose()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _api_processes(env: dict[str, str], count: int) -> Iterator[list[str]]:
    ports = [_free_port() for _ in range(count)]
    processes = [
        subprocess.Popen(  # noqa: S603
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "controlplane.app:create_app_from_env",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=env,
        )
        for port in ports
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        deadline = time.monotonic() + 60
        for url in urls:
            while True:
                try:
                    if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the API processes did not start"
                time.sleep(0.2)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


async def test_two_api_processes_share_one_budget(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str], settings: Any
) -> None:
    staff = await factory.staff()
    tenant, key = await _tenant_with_key(client, factory, staff)
    env = {
        **os.environ,
        **stack_env,
        "CONTROLPLANE_ENV": "test",
        "RATE_LIMIT_READS": "1/10",
        "RATE_LIMIT_TENANT_READS": "1/1000",
        "RATE_LIMIT_UNAUTHENTICATED": "1000/1000",
    }
    with _api_processes(env, 2) as urls:
        async with AsyncClient(headers=key, timeout=10) as http:
            codes = [(await http.get(f"{urls[n % 2]}/v1/tenants/{tenant}")).status_code for n in range(30)]
    assert 10 <= codes.count(200) <= 11, codes
    assert codes.count(429) == 30 - codes.count(200)
    assert 200 in codes[1::2] and 200 in codes[::2]  # each process served part of the one budget


async def test_checks_queued_behind_a_failed_call_fail_with_it_instead_of_each_waiting_out_a_timeout() -> None:
    """A Redis that accepts connections and never answers (a partition, a stalled server): the checks queued while
    the first call waited are answered when it fails, not sent batch after batch into the same silence."""
    answered: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answered.append(writer)
        await reader.read()  # reads what it is sent until the client gives up; never replies

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = aioredis.from_url(f"redis://127.0.0.1:{port}", socket_timeout=0.3, socket_connect_timeout=0.3)
    store = GcraStore(client, pause_seconds=5.0, max_batch=2)
    bucket = Buckets((Bucket(Subject.TENANT, f"{KEY_PREFIX}test:{uuid.uuid4()}", Limit(1, 50)),))
    try:
        started = time.monotonic()
        outcomes = await asyncio.gather(*(store.spend(bucket) for _ in range(10)), return_exceptions=True)
        elapsed = time.monotonic() - started
        assert all(isinstance(outcome, LimiterUnavailable) for outcome in outcomes), outcomes
        # One timeout for all ten, not one per batch of two (five timeouts, 1.5 s).
        assert elapsed < 0.6, elapsed
        # Still paused: the next check, or a look at what is left (GET /v1/tenants/{id}/limits), fails at once.
        for call in (store.spend, store.peek):
            started = time.monotonic()
            with pytest.raises(LimiterUnavailable):
                await call(bucket)
            assert time.monotonic() - started < 0.05, call
    finally:
        server.close()
        for writer in answered:
            writer.close()
        await client.aclose()


async def _metered_tenant(client: AsyncClient, factory: Factory, staff: Actor) -> tuple[str, dict[str, str]]:
    """A tenant subscribed to a plan metering `api_calls` (created by the caller), and an API key of it."""
    tenant, key = await _tenant_with_key(client, factory, staff)
    code = f"metered-{uuid.uuid4().hex[:8]}"
    await plan(
        client,
        staff.headers,
        code,
        [{"type": "metered", "metric_code": "api_calls", "model": "per_unit", "unit_amount_minor": "1"}],
    )
    await subscribe(client, staff.headers, tenant, code)
    return tenant, key


async def test_every_ingestion_request_spends_a_unit_even_when_its_batch_is_malformed_too_large_or_replayed(
    client: AsyncClient, factory: Factory, limits: Any
) -> None:
    """Ingestion is charged per event by its handler; a request that never gets that far (a body that is no batch,
    more than 1,000 events, an idempotent replay) still spends its one unit at the door, or a flood of them would
    be parsed, looked up and answered without limit."""
    staff = await factory.staff()
    await metric(client, staff.headers, "api_calls")
    _, key = await _metered_tenant(client, factory, staff)
    limits(LimitClass.INGESTION, client=Limit(0.01, 1000))  # a key's burst is never below a full batch
    assert (await post_usage(client, key, [event(f"a-{n}", "api_calls") for n in range(996)])).status_code == 200
    malformed = [
        await client.post("/v1/usage", content=b'{"events": [', headers={**key, "Content-Type": "application/json"})
        for _ in range(4)
    ]
    assert {r.status_code for r in malformed} == {422}, [r.text for r in malformed]
    assert malformed[-1].headers["RateLimit"].startswith('"api_key";r=0;')
    assert_problem(await post_usage(client, key, [event("x", "api_calls")]), 429, "rate_limited")

    _, key = await _metered_tenant(client, factory, staff)
    assert (await post_usage(client, key, [event(f"a-{n}", "api_calls") for n in range(996)])).status_code == 200
    too_many = [event(f"t-{n}", "api_calls") for n in range(1001)]
    assert_problem(await post_usage(client, key, too_many), 422, "batch_too_large")
    once = {"json": {"events": [event("r", "api_calls")]}, "headers": {**key, "Idempotency-Key": "r"}}
    first = await client.post("/v1/usage", **once)
    assert first.status_code == 200, first.text
    replays = [await client.post("/v1/usage", **once) for _ in range(3)]
    assert [r.status_code for r in replays] == [200, 200, 429], [r.text for r in replays]
    assert replays[0].headers["Idempotent-Replayed"] == "true"


async def test_members_reporting_usage_for_their_tenant_spend_its_budget_staff_only_their_own(
    client: AsyncClient, factory: Factory, limits: Any
) -> None:
    """`POST /v1/usage` names its tenant in the body, not the path: a member's batch still spends the tenant's
    budget (otherwise each member a tenant invites would add a person's whole ingestion budget to it)."""
    staff = await factory.staff()
    await metric(client, staff.headers, "api_calls")
    tenant, _ = await _metered_tenant(client, factory, staff)
    first, second = await factory.member(tenant, "tenant_member"), await factory.member(tenant, "tenant_member")
    limits(LimitClass.INGESTION, tenant=Limit(0.01, 1000))

    served = await post_usage(
        client, first.headers, [event(f"a-{n}", "api_calls") for n in range(600)], tenant_id=tenant
    )
    assert served.status_code == 200, served.text
    assert '"tenant";r=400;' in served.headers["RateLimit"]
    refused = await post_usage(
        client, second.headers, [event(f"b-{n}", "api_calls") for n in range(600)], tenant_id=tenant
    )
    assert_problem(refused, 429, "rate_limited")
    assert "tenant" in refused.json()["detail"]
    # Staff reporting for the tenant spend their own budget, as everywhere.
    by_staff = await post_usage(
        client, staff.headers, [event(f"c-{n}", "api_calls") for n in range(600)], tenant_id=tenant
    )
    assert by_staff.status_code == 200, by_staff.text
    assert "tenant" not in by_staff.headers["RateLimit"]
    usage = (await client.get(f"/v1/tenants/{tenant}/usage", headers=staff.headers)).json()
    assert [m["value"] for m in usage["metrics"] if m["metric_code"] == "api_calls"] == ["1200"]


async def test_behind_the_ingress_each_client_is_counted_by_the_address_the_ingress_forwards(
    app: Litestar, client: AsyncClient, factory: Factory, limits: Any
) -> None:
    """As deployed: uvicorn's proxy headers, trusting the ingress's network (FORWARDED_ALLOW_IPS). One client's
    failed authentications block that client only, whatever it writes in X-Forwarded-For itself; trusting no
    proxy (uvicorn's default, 127.0.0.1), every client would be the ingress and share its fate."""
    staff = await factory.staff()
    tenant, key = await _tenant_with_key(client, factory, staff)
    limits(LimitClass.UNAUTHENTICATED, client=Limit(1, 3))
    wrong = {"Authorization": f"Bearer cpk_{uuid.uuid4().hex}_{uuid.uuid4().hex}_{'x' * 43}"}

    def through_ingress(trusted: str) -> AsyncClient:
        proxied = ProxyHeadersMiddleware(app, trusted_hosts=trusted)  # type: ignore[arg-type]
        return AsyncClient(transport=ASGITransport(app=proxied, client=("10.0.7.7", 443)), base_url="http://api")

    async with through_ingress("10.0.0.0/16") as ingress:
        # The ingress appends the address it saw; what the attacker wrote before it is not believed.
        attacker = {**wrong, "X-Forwarded-For": "198.51.100.20, 203.0.113.66"}
        codes = [(await ingress.get(f"/v1/tenants/{tenant}", headers=attacker)).status_code for _ in range(5)]
        assert codes == [401, 401, 401, 429, 429]
        honest = {**key, "X-Forwarded-For": "198.51.100.20"}
        assert (await ingress.get(f"/v1/tenants/{tenant}", headers=honest)).status_code == 200

    async with through_ingress("127.0.0.1") as untrusted:
        for _ in range(4):
            await untrusted.get(f"/v1/tenants/{tenant}", headers={**wrong, "X-Forwarded-For": "203.0.113.67"})
        refused = await untrusted.get(f"/v1/tenants/{tenant}", headers={**key, "X-Forwarded-For": "198.51.100.21"})
        assert_problem(refused, 429, "rate_limited")
