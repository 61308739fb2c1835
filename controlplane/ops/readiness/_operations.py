"""Checks of operations: the billing cycle ran recently, backups are fresh and restorable, and the API
and database are inside their performance budgets (the SLOs of deploy/prometheus/rules)."""

from __future__ import annotations

import importlib
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from controlplane.ops.readiness import _promtext as prom
from controlplane.ops.readiness._model import Context, Outcome, in_daemon_thread

BILLING_MAX_AGE_SECONDS = 2 * 3600  # hourly cycle; ControlPlaneBillingRunMissing pages after two hours
API_P95_BUDGET_SECONDS = 0.5
API_ERROR_RATIO_BUDGET = 0.001
DB_P95_BUDGET_SECONDS = 0.1
REFUSAL_BUDGET_SECONDS = 600  # ControlPlaneTenantRateLimited opens a ticket past ten minutes
DRILLS_FILE = "restore-drills.json"
NO_SOURCE = "no metrics source: pass --api-url (CONTROLPLANE_API_URL) or --prometheus-url (PROMETHEUS_URL)"


async def _scrape(ctx: Context) -> list[prom.Sample]:
    assert ctx.options.api_url is not None
    url, timeout = ctx.options.api_url, ctx.options.client_timeout
    samples: list[prom.Sample] = await ctx.once("metrics", lambda: prom.fetch_metrics(url, timeout))
    return samples


async def _source(ctx: Context, check: str) -> tuple[str, float | None] | Outcome:
    """From Prometheus (when configured, preferred: a 5 minute window) the value of the check's PromQL;
    else the /metrics samples are fetched by the caller. An Outcome when there is no source at all."""
    if ctx.options.prometheus_url:
        value = await prom.query_prometheus(ctx.options.prometheus_url, prom.PROMQL[check], ctx.options.client_timeout)
        return "prometheus", value
    if ctx.options.api_url:
        return "metrics", None
    return Outcome.not_observed(NO_SOURCE)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds >= 0.01 else f"{seconds * 1000:.2f} ms"


async def billing(ctx: Context) -> Outcome:
    source = await _source(ctx, "billing")
    if isinstance(source, Outcome):
        return source
    kind, value = source
    if kind == "metrics":
        value = prom.gauge_max(await _scrape(ctx), prom.BILLING_LAST_SUCCESS)
    where = f"{prom.BILLING_LAST_SUCCESS} from {'Prometheus' if kind == 'prometheus' else 'the API /metrics'}"
    if not value:  # absent, or 0: the gauge's value before any successful run
        return Outcome(False, "never", f"no successful billing run recorded ({where})", None)
    age = datetime.now(UTC).timestamp() - value
    last = datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds")
    return Outcome(age < BILLING_MAX_AGE_SECONDS, f"{age / 60:.0f} min ago", f"last success {last} ({where})", age)


async def rate_limits(ctx: Context) -> Outcome:
    """No tenant refused by the rate limiter for ten minutes without a break (a runaway client, or a budget too
    small for its plan)."""
    source = await _source(ctx, "rate_limits")
    if isinstance(source, Outcome):
        return source
    kind, value = source
    if kind == "metrics":
        value = prom.gauge_max(await _scrape(ctx), prom.LONGEST_REFUSAL)
    where = f"{prom.LONGEST_REFUSAL} from {'Prometheus' if kind == 'prometheus' else 'the API /metrics'}"
    if value is None or math.isnan(value):
        return Outcome.not_observed(f"not reported yet ({where})")
    return Outcome(value < REFUSAL_BUDGET_SECONDS, f"{value:.0f} s", f"longest refusal streak ({where})", value)


async def _quantile_or_ratio(ctx: Context, check: str) -> tuple[float | None, str]:
    source = await _source(ctx, check)
    if isinstance(source, Outcome):
        raise _NotObserved(source)
    kind, value = source
    if kind == "prometheus":
        return value, f"Prometheus, rate over {prom.WINDOW}"
    samples = await _scrape(ctx)
    since = "API /metrics, cumulative since the API started"
    if check == "api_error_ratio":
        ratio = prom.error_ratio(samples)
        return (None, since) if ratio is None else (ratio[0], f"{since}; {ratio[1]:.0f} requests")
    histogram = prom.HTTP_SECONDS if check == "api_latency_p95" else prom.DB_SECONDS
    buckets = prom.buckets_of(samples, histogram)
    count = buckets[-1][1] if buckets else 0
    return prom.histogram_quantile(0.95, buckets), f"{since}; {count:.0f} observations"


class _NotObserved(Exception):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.detail)
        self.outcome = outcome


async def _budgeted(ctx: Context, check: str, budget: float, *, ratio: bool = False) -> Outcome:
    try:
        value, where = await _quantile_or_ratio(ctx, check)
    except _NotObserved as exc:
        return exc.outcome
    if value is None or math.isnan(value):
        return Outcome.not_observed(f"no requests or queries observed yet ({where})")
    observed = f"{value * 100:.3f} %" if ratio else _ms(value)
    return Outcome(value < budget, observed, where, value)


async def api_latency_p95(ctx: Context) -> Outcome:
    return await _budgeted(ctx, "api_latency_p95", API_P95_BUDGET_SECONDS)


async def api_error_ratio(ctx: Context) -> Outcome:
    return await _budgeted(ctx, "api_error_ratio", API_ERROR_RATIO_BUDGET, ratio=True)


async def db_latency_p95(ctx: Context) -> Outcome:
    return await _budgeted(ctx, "db_latency_p95", DB_P95_BUDGET_SECONDS)


# -- backups -------------------------------------------------------------------------------------------
# controlplane.ops.backups (create_backup, restore_check) writes the folder; its readers are used when present.
# The fallbacks below read the same layout defensively: `*.dump` files each with a `.json` manifest, and
# `restore-drills.json`, a list of {backup, started(_at), finished(_at), passed, details/problems}.


def _when(value: Any) -> datetime | None:
    """An ISO 8601 text or a Unix time as an aware datetime (UTC when no offset is given); None otherwise."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str) and value:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _manifest_of(dump: Path) -> dict[str, Any] | None:
    for candidate in (dump.with_suffix(".json"), dump.with_name(dump.name + ".json")):
        try:
            loaded = json.loads(candidate.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(loaded, dict):
            return loaded
    return None


def _backups_module() -> Any:
    try:
        return importlib.import_module("controlplane.ops.backups")
    except ImportError:
        return None


def latest_backup(directory: Path) -> tuple[Path, datetime] | None:
    """The newest complete backup (a `*.dump` with its `.json` manifest, written last) and when it was made:
    the manifest's `created_at` (or `finished`/`created`), else the dump's modification time."""
    backups = _backups_module()
    if backups is not None:
        backup = backups.latest_backup(directory)
        if backup is None:
            return None
        if not backup.dump.exists():
            raise FileNotFoundError(f"{backup.manifest_path.name} names {backup.dump.name}, which is missing")
        return backup.dump, _when(backup.manifest.get("created_at")) or backup.created_at
    found: list[tuple[datetime, Path]] = []
    for dump in directory.glob("*.dump"):
        manifest = _manifest_of(dump)
        if manifest is None:
            continue  # no manifest: still being written, or failed
        moment = next(filter(None, (_when(manifest.get(key)) for key in ("created_at", "finished", "created"))), None)
        found.append((moment or datetime.fromtimestamp(dump.stat().st_mtime, UTC), dump))
    if not found:
        return None
    moment, dump = max(found)
    return dump, moment


def last_drill(directory: Path) -> dict[str, Any] | None:
    """The most recent restore drill recorded in `<dir>/restore-drills.json`, or None."""
    backups = _backups_module()
    if backups is not None:
        return backups.last_drill(directory)
    try:
        drills = json.loads((directory / DRILLS_FILE).read_text())
    except FileNotFoundError:
        return None
    entries = [entry for entry in drills if isinstance(entry, dict)] if isinstance(drills, list) else []
    if not entries:
        raise ValueError(f"{directory / DRILLS_FILE} holds no drill records")
    epoch = datetime.fromtimestamp(0, UTC)
    return max(entries, key=lambda entry: _drill_time(entry) or epoch)


def _drill_time(drill: dict[str, Any]) -> datetime | None:
    keys = ("finished_at", "finished", "started_at", "started")
    return next(filter(None, (_when(drill.get(key)) for key in keys)), None)


async def backups(ctx: Context) -> Outcome:
    directory, limit_hours = ctx.options.backup_dir, ctx.options.backup_max_age_hours
    try:
        latest, drill = await in_daemon_thread(lambda: (latest_backup(directory), last_drill(directory)))
    except Exception as exc:  # an unreadable manifest or drill record: what it is, in the report
        return Outcome(False, "unreadable", f"{type(exc).__name__}: {exc}"[:300], None)
    if latest is None:
        return Outcome(False, "no backup", f"no *.dump with a .json manifest in {directory}", None)
    dump, made = latest
    now = datetime.now(UTC)
    age = (now - made).total_seconds()
    problems = []
    if age >= limit_hours * 3600:
        problems.append(f"latest backup {dump.name} is older than {limit_hours:g} h")
    if drill is None:
        problems.append(f"no restore drill recorded in {directory / DRILLS_FILE}")
        drill_text = "no drill"
    else:
        passed = drill.get("passed") is True
        when = _drill_time(drill)
        ago = f" {(now - when).total_seconds() / 3600:.1f} h ago" if when else ""
        drill_text = f"drill {'passed' if passed else 'FAILED'}{ago}"
        if not passed:
            why = drill.get("problems") or drill.get("details") or ""
            problems.append(f"last restore drill (of {drill.get('backup')}) did not pass: {why}"[:300])
    detail = "; ".join(problems) or f"{dump.name}; last drill restored {drill and drill.get('backup')}"
    return Outcome(not problems, f"{age / 3600:.1f} h old, {drill_text}", detail, age)
