"""`controlplane readiness`: named checks of everything the control plane needs, with what each observed
against its budget, and whether it is required.

Exit rules: 0 only when every *required* check passed. Required everywhere: postgres, migrations, rls,
redis, openbao, stripe. Required in production (CONTROLPLANE_ENV=production) or when named with
`--require`: celery_workers, billing, backups, api_latency_p95, api_error_ratio, db_latency_p95;
CONTROLPLANE_REQUIRE_WORKERS=1 requires celery_workers anywhere (=0 waives it, even in production).
celery_beat is informational only, and so is rate_limits unless named with `--require` (one tenant looping
on 429s is its own problem, not the platform's). A check that cannot observe its subject ("not observed", e.g. no
metrics source) never passes: it fails when required and shows `skip` otherwise.
"""

from controlplane.ops.readiness._model import CHECK_NAMES, CheckResult, Options, Outcome, required_checks
from controlplane.ops.readiness._operations import last_drill, latest_backup
from controlplane.ops.readiness._promtext import buckets_of, error_ratio, histogram_quantile, parse_exposition
from controlplane.ops.readiness._runner import Report, render_json, render_table, run_readiness

__all__ = [
    "CHECK_NAMES",
    "CheckResult",
    "Options",
    "Outcome",
    "Report",
    "buckets_of",
    "error_ratio",
    "histogram_quantile",
    "last_drill",
    "latest_backup",
    "parse_exposition",
    "render_json",
    "render_table",
    "required_checks",
    "run_readiness",
]
