"""Prometheus metrics of the control plane, and their exposition.

Names follow Prometheus conventions (`controlplane_` prefix, base units, `_total` counters); labels are
bounded: a route template, never a raw path, and never a tenant id. When PROMETHEUS_MULTIPROC_DIR is
set (several API or worker processes), the scrape merges every process's files.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from redis.exceptions import RedisError

from controlplane.core.errors import ServiceUnavailable

log = logging.getLogger("controlplane.metrics")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS_TOTAL = Counter(
    "controlplane_http_requests_total",
    "HTTP requests answered, by route template and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "controlplane_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and status code.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
DB_QUERY_SECONDS = Histogram(
    "controlplane_db_query_duration_seconds",
    "Time PostgreSQL took to answer one query.",
    buckets=DB_BUCKETS,
)
SYSTEM_CONTEXT_TOTAL = Counter(
    "controlplane_system_context_total",
    "Cross-tenant (system) database transactions opened, by declared reason.",
    ["reason"],
)
AUTH_FAILURES_TOTAL = Counter(
    "controlplane_auth_failures_total",
    "Requests refused because their credentials were missing, invalid, expired or revoked.",
    ["kind"],
)
BILLING_RUN_SECONDS = Histogram(
    "controlplane_billing_run_duration_seconds",
    "Time one billing cycle took over every due subscription.",
    buckets=(0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 3600.0),
)
BILLING_LAST_SUCCESS = Gauge(
    "controlplane_billing_last_success_timestamp_seconds",
    "When a billing cycle last finished with no subscription failing (Unix time).",
    multiprocess_mode="max",
)
BILLING_RUNS_TOTAL = Counter(
    "controlplane_billing_runs_total",
    "Billing cycles run, by outcome (ok, or partial when some subscription failed).",
    ["outcome"],
)
INVOICES_CREATED_TOTAL = Counter(
    "controlplane_invoices_created_total",
    "Invoices written, by kind (cycle, change, final).",
    ["kind"],
)
BILLING_FAILURES_TOTAL = Counter(
    "controlplane_billing_failures_total",
    "Subscriptions whose billing failed in a cycle (each is retried by the next cycle).",
)
BILLING_SUBSCRIPTION_FAILURES_TOTAL = Counter(
    "controlplane_billing_subscription_failures_total",
    "Subscriptions the billing cycle could not bill, by reason (a billing error code, or unexpected); each is "
    "recorded on the subscription and retried on a back-off.",
    ["reason"],
)
BILLING_FINALIZE_FAILURES_TOTAL = Counter(
    "controlplane_billing_finalize_failures_total",
    "Draft invoices that could not be finalized, by reason; each is recorded on the invoice and retried on a back-off.",
    ["reason"],
)
PAYMENTS_TOTAL = Counter(
    "controlplane_payments_total",
    "Invoice collection attempts answered by Stripe, by outcome (succeeded, failed).",
    ["outcome"],
)
WEBHOOKS_TOTAL = Counter(
    "controlplane_webhooks_total",
    "Stripe webhook deliveries, by outcome (applied, ignored, duplicate, rejected, deferred: answered 409).",
    ["outcome"],
)
DUNNING_STEPS_TOTAL = Counter(
    "controlplane_dunning_steps_total",
    "Dunning steps taken: retry, uncollectible (tenant suspended), reactivated.",
    ["step"],
)
USAGE_EVENTS_TOTAL = Counter(
    "controlplane_usage_events_total",
    "Usage events received, by outcome (accepted, duplicate, rejected).",
    ["outcome"],
)
CELERY_TASK_RUNS_TOTAL = Counter(
    "controlplane_celery_task_runs_total",
    "Celery task runs, by task name and outcome.",
    ["task", "outcome"],
)
CELERY_TASK_SECONDS = Histogram(
    "controlplane_celery_task_duration_seconds",
    "Celery task run time, by task name.",
    ["task"],
    buckets=(*LATENCY_BUCKETS, 30.0, 60.0, 300.0),
)
SECRET_ROTATIONS_TOTAL = Counter(
    "controlplane_secret_rotations_total",
    "Secret rotations attempted, by secret (jwt_signing_key, license_signing_key, …) and outcome "
    "(success, failure, skipped when not due).",
    ["secret", "outcome"],
)
SECRET_AGE_SECONDS = Gauge(
    "controlplane_secret_age_seconds",
    "Time since a platform secret was last rotated (or created), read from OpenBao when scraped.",
    ["secret"],
    multiprocess_mode="mostrecent",
)


WEBHOOK_DELIVERIES_TOTAL = Counter(
    "controlplane_webhook_deliveries_total",
    "Attempts to deliver a tenant's webhook event, by outcome (delivered, retrying, failed: given up).",
    ["outcome"],
)
ENTITLEMENT_CHECKS_TOTAL = Counter(
    "controlplane_entitlement_checks_total",
    "Entitlement checks answered, by decision (allowed, denied).",
    ["decision"],
)
ENTITLEMENT_CACHE_LOOKUPS_TOTAL = Counter(
    "controlplane_entitlement_cache_lookups_total",
    "License snapshots looked up for entitlement checks, by result (hit: from memory; miss: from the database).",
    ["result"],
)

RATE_LIMIT_REFUSALS_TOTAL = Counter(
    "controlplane_rate_limit_refusals_total",
    "Requests refused 429 by the rate limiter, by route template, limit class and the budget that was exhausted "
    "(api_key, tenant, user, address); never a tenant id.",
    ["route", "limit_class", "subject"],
)
RATE_LIMIT_UNAVAILABLE_TOTAL = Counter(
    "controlplane_rate_limit_unavailable_total",
    "Requests the rate limiter could not check (Redis unavailable), by what became of them: served (reads fail "
    "open) or refused (writes fail closed with 503).",
    ["outcome"],
)
RATE_LIMIT_LONGEST_REFUSAL_SECONDS = Gauge(
    "controlplane_rate_limit_longest_refusal_seconds",
    "How long the tenant refused the longest without a break (refusals less than a minute apart) has been refused; "
    "0 when none is. Read from Redis at scrape time.",
    multiprocess_mode="mostrecent",
)

BATCH_ITEM_FAILURES_TOTAL = Counter(
    "controlplane_batch_item_failures_total",
    "Items a batch job could not process (recorded on the item and retried later; the job went on), by batch job "
    "and reason (a domain error's code, or `unexpected`). The label is `batch_job`: Prometheus owns `job`.",
    ["batch_job", "reason"],
)


def batch_item_failed(job: str, error: BaseException) -> str:
    """Count one item's failure in a batch job and log it; the reason, bounded: a domain error's stable code
    (a fixed set of classes) or `unexpected`. `job` is a fixed name per task, never an id."""
    reason = str(getattr(error, "code", "")) if getattr(error, "code", None) else "unexpected"
    if not reason.replace("_", "").isalnum() or len(reason) > 60:
        reason = "unexpected"
    BATCH_ITEM_FAILURES_TOTAL.labels(batch_job=job, reason=reason).inc()
    log.warning("batch job %s: an item failed (%s): %s", job, reason, error, exc_info=reason == "unexpected")
    return reason


def batch_item_detail(reason: str, error: BaseException) -> str:
    """What may be stored on the failed item and shown to its owner: a domain error's own detail, never the
    text of an unexpected one (SQL, internals), which goes to the log only."""
    detail = getattr(error, "detail", None) if reason != "unexpected" else None
    return f"{reason}: {detail or 'an internal error; the operators are alerted'}"[:500]


def stop_batch_on_outage(job: str, error: BaseException) -> None:
    """Call first in a batch loop's per-item `except`: a dependency outage (the database, OpenBao, Stripe: a
    `ServiceUnavailable`) is not the item's fault, so it is never recorded on the item nor counted towards its
    attempts or back-off; the run stops here (the error is raised again, the Celery task fails and the beat runs
    it next time, when the items are still due)."""
    if isinstance(error, ServiceUnavailable):
        DEPENDENCY_UNAVAILABLE_TOTAL.labels(dependency=error.dependency).inc()
        log.warning("batch job %s stopped: %s is unavailable", job, error.dependency)
        raise error


# Business gauges, read from the database when the API is scraped (billing/business_metrics.py).
ACTIVE_TENANTS = Gauge("controlplane_active_tenants", "Tenants whose status is active.", multiprocess_mode="mostrecent")
SUBSCRIPTIONS = Gauge(
    "controlplane_subscriptions",
    "Subscriptions that are not canceled, by status.",
    ["status"],
    multiprocess_mode="mostrecent",
)
MRR_MINOR_UNITS = Gauge(
    "controlplane_mrr_minor_units",
    "Monthly recurring revenue from the MRR history: the sum of each tenant's latest MRR, in minor units.",
    ["currency"],
    multiprocess_mode="mostrecent",
)
ARR_MINOR_UNITS = Gauge(
    "controlplane_arr_minor_units",
    "Annual recurring revenue: 12 x MRR, in the currency's minor units.",
    ["currency"],
    multiprocess_mode="mostrecent",
)
CUSTOMERS = Gauge(
    "controlplane_customers",
    "Tenants whose latest MRR in the currency is above 0.",
    ["currency"],
    multiprocess_mode="mostrecent",
)
TRIAL_CONVERSION_RATIO = Gauge(
    "controlplane_trial_conversion_ratio",
    "This month's trials converted over trials ended (converted or canceled); absent while none has ended.",
    ["currency"],
    multiprocess_mode="mostrecent",
)


# Celery's Redis broker keeps each queue as a list; its length is the backlog. Read by the API at scrape time.
CELERY_QUEUES = ("celery",)
CELERY_QUEUE_MESSAGES = Gauge(
    "controlplane_celery_queue_messages",
    "Messages waiting in a Celery queue (the broker's list length), read when the API is scraped.",
    ["queue"],
    multiprocess_mode="mostrecent",
)


async def observe_celery_queues(redis_client: Any) -> None:
    """Best effort: a broker that does not answer in half a second leaves the last reading (readiness reports
    Redis itself)."""
    try:
        async with asyncio.timeout(0.5):
            for queue in CELERY_QUEUES:
                CELERY_QUEUE_MESSAGES.labels(queue=queue).set(await redis_client.llen(queue))
    except (TimeoutError, OSError, RedisError):
        return


class ScrapeRefresher:
    """Gauges read from elsewhere (OpenBao, the database) when the API is scraped: at most every `interval`
    seconds, and bounded by `timeout`, so a slow source never makes the scrape itself time out; on a failure
    the scrape goes on with the last values."""

    def __init__(
        self,
        what: str,
        refresh: Callable[[], Awaitable[object]],
        *,
        interval: float = 60.0,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._what = what
        self._refresh = refresh
        self._interval = interval
        self._timeout = timeout
        self._clock = clock
        self._refreshed_at: float | None = None

    async def refresh_if_stale(self) -> None:
        now = self._clock()
        if self._refreshed_at is not None and now - self._refreshed_at < self._interval:
            return
        self._refreshed_at = now
        try:
            await asyncio.wait_for(self._refresh(), self._timeout)
        except Exception as exc:  # the scrape goes on with the last values
            log.warning("%s not refreshed: %s", self._what, type(exc).__name__)


def scrape_registry() -> CollectorRegistry:
    """What a scrape reads: this process, or every process sharing PROMETHEUS_MULTIPROC_DIR."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return DEFAULT_REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    # Process metrics cannot be merged across processes; those of the process that serves the scrape.
    ProcessCollector(registry=registry)
    return registry


def exposition() -> tuple[bytes, str]:
    """The text a scrape of this process (or of all processes, in multiprocess mode) returns."""
    return generate_latest(scrape_registry()), CONTENT_TYPE_LATEST


class HTTPMetricsMiddleware:
    """Pure ASGI middleware: counts and times every HTTP request by its route template."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            # Litestar sets the template once it has routed; unrouted requests share one label.
            route = scope.get("path_template") or "unmatched"
            # Clients choose the method token; only known ones become label values.
            method = scope.get("method", "GET")
            method = method if method in HTTP_METHODS else "OTHER"
            counter, timer = _http_series(method, route, status)
            counter.inc()
            timer.observe(time.perf_counter() - started)


@functools.cache
def _http_series(method: str, route: str, status: int) -> tuple[Any, Any]:
    # `labels()` costs microseconds a call; the label sets are few (templates x methods x statuses).
    labels = {"method": method, "route": route, "status": str(status)}
    return HTTP_REQUESTS_TOTAL.labels(**labels), HTTP_REQUEST_SECONDS.labels(**labels)


DEPENDENCY_UNAVAILABLE_TOTAL = Counter(
    "controlplane_dependency_unavailable_total",
    "Requests answered 503 because a dependency was unavailable, by dependency (database, redis, openbao, ...).",
    ["dependency"],
)
DB_CONNECTION_RETRIES_TOTAL = Counter(
    "controlplane_db_connection_retries_total",
    "Transactions whose pooled connection was found broken (a PostgreSQL restart) at BEGIN and were begun again.",
)
THROTTLE_FALLBACK_TOTAL = Counter(
    "controlplane_signin_throttle_fallback_total",
    "Sign-in attempts counted by the per-process fallback throttle because Redis was unavailable.",
)
# Collection runs (billing/payments/dunning_service.py).
COLLECTION_FAILURES_TOTAL = Counter(
    "controlplane_collection_failures_total",
    "Invoices the collection run could not charge, by reason (refused: Stripe refused the request; unreachable; "
    "no_payment_method; error: an unexpected failure; refund: a lost refund could not be sent again). Each is "
    "recorded on its invoice (or refund) and retried later.",
    ["reason"],
)
# The notification outbox (tenants/notifications/sender.py).
NOTIFICATIONS_TOTAL = Counter(
    "controlplane_notifications_total",
    "Notification emails by event type (the catalogue's bounded names) and outcome: sent; retrying (a failed "
    "attempt, tried again after a pause); failed (given up); skipped (no address any more, or the same address "
    "already had it).",
    ["event", "outcome"],
)
NOTIFICATIONS_OLDEST_PENDING_SECONDS = Gauge(
    "controlplane_notifications_oldest_pending_seconds",
    "Age of the oldest notification email not yet sent, failed or skipped (0: none), set by each sending run "
    "(every minute): it grows while mail is not going out (the mail server away or deferring, the worker stuck).",
    multiprocess_mode="mostrecent",
)
