"""What a readiness check reports, what it is given, and which checks are required."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from controlplane.core.settings import Settings

T = TypeVar("T")
Status = Literal["pass", "fail", "warn", "skip"]
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

# Required wherever `controlplane readiness` runs: without any of these the API cannot serve safely.
ALWAYS_REQUIRED = frozenset({"postgres", "migrations", "rls", "redis", "openbao", "stripe"})
# Required in production (CONTROLPLANE_ENV=production) or when named with `--require`; elsewhere (a laptop,
# CI, the test stack) they are informational: reported, never deciding the exit code.
REQUIRED_IN_PRODUCTION = frozenset(
    {"celery_workers", "billing", "backups", "api_latency_p95", "api_error_ratio", "db_latency_p95"}
)
# Never required: observable only on the host beat runs on (its schedule file).
INFORMATIONAL = frozenset({"celery_beat"})
# Required only when named with `--require`, in production too: one tenant looping on 429s is its own problem.
REQUIRABLE = REQUIRED_IN_PRODUCTION | {"rate_limits"}
CHECK_NAMES = (
    "postgres",
    "migrations",
    "rls",
    "redis",
    "openbao",
    "stripe",
    "celery_workers",
    "celery_beat",
    "billing",
    "backups",
    "api_latency_p95",
    "api_error_ratio",
    "db_latency_p95",
    "rate_limits",
)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One named check: whether it passed, what was observed against what budget, and if it is required.

    `value` is the observed figure in base units (seconds, a ratio, a count) for machines; `measured` is
    False when the check could not observe its subject at all ("not observed"), which never counts as a pass.
    """

    name: str
    passed: bool
    observed: str
    budget: str
    required: bool
    detail: str = ""
    value: float | None = None
    measured: bool = True

    @property
    def status(self) -> Status:
        if self.passed:
            return "pass"
        if self.required:
            return "fail"
        return "warn" if self.measured else "skip"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "passed": self.passed,
            "required": self.required,
            "measured": self.measured,
            "observed": self.observed,
            "value": self.value,
            "budget": self.budget,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a check function returns; the runner adds the name, budget and required flag."""

    passed: bool
    observed: str
    detail: str = ""
    value: float | None = None
    measured: bool = True

    @classmethod
    def not_observed(cls, detail: str) -> Outcome:
        return cls(False, "not observed", detail, None, measured=False)


@dataclass(frozen=True, slots=True)
class Options:
    api_url: str | None = None
    prometheus_url: str | None = None
    backup_dir: Path = Path(".devstack/backups")
    backup_max_age_hours: float = 26.0
    beat_schedule: Path = Path(".devstack/celerybeat-schedule")
    # Each check's limit; the network calls inside one use half of it, so a slow answer is reported as such.
    timeout_seconds: float = 10.0
    require: frozenset[str] = frozenset()

    @property
    def client_timeout(self) -> float:
        return self.timeout_seconds / 2


def required_checks(settings: Settings, options: Options, environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The checks whose failure makes the exit code non-zero (see the module docstring for the rules)."""
    environ = os.environ if environ is None else environ
    required = set(ALWAYS_REQUIRED) | set(options.require)
    if settings.env == "production":
        required |= REQUIRED_IN_PRODUCTION
    workers = environ.get("CONTROLPLANE_REQUIRE_WORKERS", "").strip().lower()
    if workers in _TRUE:
        required.add("celery_workers")
    elif workers in _FALSE and "celery_workers" not in options.require:
        required.discard("celery_workers")
    return frozenset(required)


@dataclass(slots=True)
class Context:
    """What every check is given; fetches shared by several checks (a /metrics scrape) are made once."""

    settings: Settings
    options: Options
    _shared: dict[str, asyncio.Task[Any]] = field(default_factory=dict)

    async def once(self, key: str, make: Callable[[], Any]) -> Any:
        """The result of `make()` (a coroutine), computed by the first caller and shared with the others."""
        if key not in self._shared:
            self._shared[key] = asyncio.ensure_future(make())
        return await asyncio.shield(self._shared[key])


async def in_daemon_thread(function: Callable[[], T]) -> T:
    """Run a blocking call in a daemon thread: unlike `asyncio.to_thread`, a call that hangs past its
    timeout (a client retrying a closed port) cannot keep the process from exiting."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)

    def target() -> None:
        value, error = None, None
        try:
            value = function()
        except BaseException as exc:  # handed to the awaiting task, whatever it is
            error = exc
        try:
            loop.call_soon_threadsafe(settle, value, error)
        except RuntimeError:  # the loop has closed: the check already timed out and was reported
            pass

    threading.Thread(target=target, name="readiness-check", daemon=True).start()
    return await future
