"""The `controlplane readiness` click command (attached by controlplane.cli); imports the checks lazily."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import click

from controlplane.core.settings import Settings
from controlplane.ops.readiness._model import REQUIRABLE, Options
from controlplane.ops.readiness._runner import render_json, render_table, run_readiness


def readiness_command(settings: Callable[[], Settings], devstack_root: Callable[[], Path]) -> click.Command:
    @click.command("readiness")
    @click.option("--json", "as_json", is_flag=True, help="Print a machine-readable JSON report instead of a table.")
    @click.option(
        "--api-url",
        envvar="CONTROLPLANE_API_URL",
        default=None,
        help="A running API whose /metrics is read (billing, performance) when no Prometheus is given.",
    )
    @click.option(
        "--prometheus-url",
        envvar="PROMETHEUS_URL",
        default=None,
        help="Prometheus server queried for billing and the performance budgets (preferred over --api-url).",
    )
    @click.option(
        "--backup-dir",
        envvar="CONTROLPLANE_BACKUP_DIR",
        type=click.Path(path_type=Path, file_okay=False),
        default=None,
        help="Where backups (*.dump + .json manifest) and restore-drills.json are; default <devstack>/backups.",
    )
    @click.option(
        "--backup-max-age-hours",
        type=click.FloatRange(min=0, min_open=True),
        default=26.0,
        show_default=True,
        help="The newest backup must be younger than this.",
    )
    @click.option(
        "--timeout",
        "timeout_seconds",
        type=click.FloatRange(min=0.5),
        default=10.0,
        show_default=True,
        help="Limit of each check, in seconds (checks run concurrently).",
    )
    @click.option(
        "--require",
        multiple=True,
        type=click.Choice(sorted(REQUIRABLE)),
        help="Make an informational check required (repeatable); in production all but rate_limits are.",
    )
    def readiness(
        as_json: bool,
        api_url: str | None,
        prometheus_url: str | None,
        backup_dir: Path | None,
        backup_max_age_hours: float,
        timeout_seconds: float,
        require: tuple[str, ...],
    ) -> None:
        """Check that everything the control plane needs is up, migrated, isolated and inside its budgets.

        Exits 0 only when every required check passed. Always required: postgres, migrations, rls, redis,
        openbao, stripe. Required in production (CONTROLPLANE_ENV=production) or with --require: celery_workers,
        billing, backups and the budgets (API p95 < 500 ms, 5xx < 0.1 %, DB p95 < 100 ms);
        CONTROLPLANE_REQUIRE_WORKERS=1/0 requires or waives the workers. celery_beat is informational. A check
        that observed nothing never passes.
        """
        import asyncio

        root = devstack_root()
        options = Options(
            api_url=api_url or None,
            prometheus_url=prometheus_url or None,
            backup_dir=backup_dir or root / "backups",
            backup_max_age_hours=backup_max_age_hours,
            beat_schedule=Path(os.environ.get("CONTROLPLANE_BEAT_SCHEDULE") or root / "celerybeat-schedule"),
            timeout_seconds=timeout_seconds,
            require=frozenset(require),
        )
        report = asyncio.run(run_readiness(settings(), options))
        click.echo(render_json(report) if as_json else render_table(report))
        sys.exit(0 if report.ready else 1)

    return readiness
