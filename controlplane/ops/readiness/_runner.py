"""Run every check concurrently, each under its own timeout, and render the report as a table or JSON."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from controlplane.core.settings import Settings
from controlplane.ops.readiness import _operations as ops
from controlplane.ops.readiness import _services as services
from controlplane.ops.readiness._model import CHECK_NAMES, CheckResult, Context, Options, Outcome, required_checks

CheckFunction = Callable[[Context], Awaitable[Outcome]]


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    budget: str
    run: CheckFunction


def checks(options: Options) -> tuple[Check, ...]:
    return (
        Check("postgres", f"reachable, select 1 < {services.POSTGRES_BUDGET_SECONDS * 1000:.0f} ms", services.postgres),
        Check("migrations", "every migration of every app applied", services.migrations),
        Check("rls", "RLS enabled+forced+policy; app role cannot bypass", services.rls),
        Check("redis", f"PING < {services.REDIS_BUDGET_SECONDS * 1000:.0f} ms", services.redis),
        Check("openbao", "unsealed, token valid, no secret overdue", services.openbao),
        Check("stripe", "authenticated call succeeds", services.stripe),
        Check("celery_workers", f">= 1 answers ping in {services.WORKER_PING_SECONDS:g} s", services.celery_workers),
        Check("celery_beat", f"schedule saved < {services.BEAT_MAX_AGE_SECONDS // 60} min ago", services.celery_beat),
        Check("billing", f"last success < {ops.BILLING_MAX_AGE_SECONDS // 3600} h ago", ops.billing),
        Check("backups", f"< {options.backup_max_age_hours:g} h old, last drill passed", ops.backups),
        Check("api_latency_p95", f"< {ops.API_P95_BUDGET_SECONDS * 1000:.0f} ms", ops.api_latency_p95),
        Check("api_error_ratio", f"< {ops.API_ERROR_RATIO_BUDGET * 100:g} % 5xx", ops.api_error_ratio),
        Check("db_latency_p95", f"< {ops.DB_P95_BUDGET_SECONDS * 1000:.0f} ms", ops.db_latency_p95),
        Check("rate_limits", f"no tenant refused > {ops.REFUSAL_BUDGET_SECONDS // 60} min", ops.rate_limits),
    )


@dataclass(frozen=True, slots=True)
class Report:
    environment: str
    results: tuple[CheckResult, ...]
    generated_at: datetime

    @property
    def failed_required(self) -> list[str]:
        return [result.name for result in self.results if result.required and not result.passed]

    @property
    def ready(self) -> bool:
        return not self.failed_required

    def as_dict(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "environment": self.environment,
            "generated_at": self.generated_at.isoformat(timespec="seconds"),
            "failed_required": self.failed_required,
            "checks": [result.as_dict() for result in self.results],
        }


async def _run_one(check: Check, ctx: Context, required: bool) -> CheckResult:
    timeout = ctx.options.timeout_seconds
    try:
        outcome = await asyncio.wait_for(check.run(ctx), timeout)
    except TimeoutError:
        outcome = Outcome(False, "timed out", f"no answer within {timeout:g} s")
    except Exception as exc:  # any failure of the thing checked is a failed check, whatever its type
        outcome = Outcome(False, "error", f"{type(exc).__name__}: {exc}"[:300])
    return CheckResult(
        check.name,
        outcome.passed,
        outcome.observed,
        check.budget,
        required,
        outcome.detail,
        outcome.value,
        outcome.measured,
    )


async def run_readiness(settings: Settings, options: Options, environ: Mapping[str, str] | None = None) -> Report:
    """Every check at once (they are independent), each bounded by `options.timeout_seconds`."""
    required = required_checks(settings, options, environ)
    ctx = Context(settings, options)
    results = await asyncio.gather(*(_run_one(check, ctx, check.name in required) for check in checks(options)))
    assert tuple(result.name for result in results) == CHECK_NAMES
    return Report(settings.env, tuple(results), datetime.now(UTC))


STATUS_TEXT = {"pass": "ok", "fail": "FAIL", "warn": "warn", "skip": "skip"}


def render_table(report: Report) -> str:
    headers = ("CHECK", "REQUIRED", "STATUS", "OBSERVED", "BUDGET")
    rows = [
        (r.name, "yes" if r.required else "no", STATUS_TEXT[r.status], r.observed, r.budget) for r in report.results
    ]
    widths = [max(len(str(row[i])) for row in (headers, *rows)) for i in range(len(headers))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    out = [line(headers), line(tuple("-" * width for width in widths))]
    for result, row in zip(report.results, rows, strict=True):
        out.append(line(row))
        if result.detail and result.status != "pass":
            out.append(" " * (widths[0] + 2) + "-> " + result.detail)
    informational = [r.name for r in report.results if not r.required and not r.passed]
    out.append("")
    if report.ready:
        required = sum(1 for r in report.results if r.required)
        out.append(f"READY: all {required} required checks passed ({report.environment})")
    else:
        out.append("NOT READY: required checks failed: " + ", ".join(report.failed_required))
    if informational:
        out.append("informational, not passing (not deciding the exit code): " + ", ".join(informational))
    return "\n".join(out)


def render_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2)
