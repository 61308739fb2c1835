"""Figures from Prometheus: the text a /metrics endpoint serves, or the HTTP API of a Prometheus server.

From /metrics the histograms are cumulative since the API process started; from Prometheus they are rates
over the last five minutes, the same expressions as deploy/prometheus/rules.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

HTTP_SECONDS = "controlplane_http_request_duration_seconds"
HTTP_REQUESTS = "controlplane_http_requests_total"
DB_SECONDS = "controlplane_db_query_duration_seconds"
BILLING_LAST_SUCCESS = "controlplane_billing_last_success_timestamp_seconds"
LONGEST_REFUSAL = "controlplane_rate_limit_longest_refusal_seconds"
WINDOW = "5m"

PROMQL = {
    "api_latency_p95": f"histogram_quantile(0.95, sum by (le) (rate({HTTP_SECONDS}_bucket[{WINDOW}])))",
    "api_error_ratio": (
        f'sum(rate({HTTP_REQUESTS}{{status=~"5.."}}[{WINDOW}])) / sum(rate({HTTP_REQUESTS}[{WINDOW}]))'
    ),
    "db_latency_p95": f"histogram_quantile(0.95, sum by (le) (rate({DB_SECONDS}_bucket[{WINDOW}])))",
    "billing": f"max({BILLING_LAST_SUCCESS})",
    "rate_limits": f"max({LONGEST_REFUSAL})",
}


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


def parse_exposition(text: str) -> list[Sample]:
    """Every sample of a Prometheus text exposition, with prometheus_client's own parser."""
    return [
        Sample(sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def buckets_of(samples: Iterable[Sample], histogram: str) -> list[tuple[float, float]]:
    """A histogram's cumulative buckets `(le, count)`, summed over every label set (`sum by (le)`)."""
    counts: dict[float, float] = defaultdict(float)
    for sample in samples:
        if sample.name == f"{histogram}_bucket" and "le" in sample.labels:
            counts[float(sample.labels["le"])] += sample.value
    return sorted(counts.items())


def histogram_quantile(quantile: float, buckets: list[tuple[float, float]]) -> float | None:
    """The quantile of cumulative buckets as PromQL's histogram_quantile computes it: linear interpolation
    inside the bucket the rank falls in, from 0 for the first bucket; the highest finite bound when the rank
    falls in +Inf. None when nothing was observed."""
    if not buckets or not math.isinf(buckets[-1][0]):
        return None
    total = buckets[-1][1]
    if total <= 0:
        return None
    rank = quantile * total
    lower_bound, lower_count = 0.0, 0.0
    for index, (upper_bound, count) in enumerate(buckets):
        if count >= rank:
            if math.isinf(upper_bound):
                return buckets[index - 1][0] if index > 0 else None
            if index == 0 and upper_bound <= 0:
                return upper_bound
            if count == lower_count:
                return upper_bound
            return lower_bound + (upper_bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = upper_bound, count
    return None


def error_ratio(samples: Iterable[Sample]) -> tuple[float, float] | None:
    """(5xx answers / all answers, all answers) of the HTTP request counter; None when nothing was answered."""
    errors = total = 0.0
    for sample in samples:
        if sample.name == HTTP_REQUESTS:
            total += sample.value
            if sample.labels.get("status", "").startswith("5"):
                errors += sample.value
    return (errors / total, total) if total > 0 else None


def gauge_max(samples: Iterable[Sample], name: str) -> float | None:
    values = [sample.value for sample in samples if sample.name == name]
    return max(values) if values else None


async def fetch_metrics(api_url: str, client_timeout: float) -> list[Sample]:
    async with httpx.AsyncClient(timeout=client_timeout) as client:
        response = await client.get(api_url.rstrip("/") + "/metrics")
        response.raise_for_status()
    return parse_exposition(response.text)


async def query_prometheus(prometheus_url: str, expression: str, client_timeout: float) -> float | None:
    """An instant query's single value; None when the result is empty or NaN (no data in the window)."""
    async with httpx.AsyncClient(timeout=client_timeout) as client:
        response = await client.get(prometheus_url.rstrip("/") + "/api/v1/query", params={"query": expression})
        response.raise_for_status()
    body = response.json()
    if body.get("status") != "success":
        raise RuntimeError(f"Prometheus: {body.get('error', 'query failed')}")
    result = body["data"]["result"]
    if body["data"].get("resultType") == "scalar":
        value = float(result[1])
    elif result:
        value = float(result[0]["value"][1])
    else:
        return None
    return None if math.isnan(value) else value
