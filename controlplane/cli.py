"""The `controlplane` command: dev stack, migrations, users and tokens, and `run` for `make run`."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from billing import service as billing
from controlplane.core.auth.tokens import TokenSigner
from controlplane.core.errors import DomainError
from controlplane.core.secrets import JWT_KEYS_PATH, SecretStore
from controlplane.core.settings import Settings
from controlplane.devstack import DevStack
from controlplane.devstack.cli import devstack
from controlplane.devstack.supervisor import run_foreground
from controlplane.ops import backups
from controlplane.ops.environment import devstack_root, settings_from_environment, with_pool
from controlplane.ops.migrations import run_migrations
from controlplane.ops.readiness.command import readiness_command
from controlplane.ops.rotation_cli import secrets_group
from tenants import service


@click.group()
def cli() -> None:
    """Control plane for multi-tenant SaaS platforms."""


@cli.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("migrate")
def migrate() -> None:
    """Run every migration as the owner role (DATABASE_OWNER_URL)."""

    settings = settings_from_environment()
    if not settings.database_owner_url:
        raise click.ClickException("DATABASE_OWNER_URL is not set")
    asyncio.run(run_migrations(settings.database_owner_url, settings.database_url))
    click.echo("migrations applied")


@cli.group("users")
def users_group() -> None:
    """People who sign in."""


@users_group.command("create")
@click.option("--email", required=True)
@click.option("--password", required=True, prompt=True, hide_input=True, confirmation_prompt=False)
@click.option(
    "--role",
    required=True,
    type=click.Choice(["platform_staff", "tenant_admin", "tenant_member", "billing_viewer"]),
)
@click.option("--tenant", "tenant_id", type=click.UUID, default=None, help="Tenant to join (tenant roles).")
def create_user(email: str, password: str, role: str, tenant_id: Any) -> None:
    """Create a user (or reset their password), as staff or as a member of a tenant."""

    if role != "platform_staff" and tenant_id is None:
        raise click.UsageError("tenant roles need --tenant")
    settings = settings_from_environment()
    try:
        user = with_pool(
            settings,
            lambda: service.create_or_update_user(
                email,
                password,
                staff=role == "platform_staff",
                tenant_id=tenant_id,
                role=None if role == "platform_staff" else role,
            ),
        )
    except DomainError as exc:
        raise click.ClickException(f"{exc.code}: {exc.detail}") from exc
    click.echo(f"user {user.id} {user.email} ({role})")


@cli.group("tokens")
def tokens_group() -> None:
    """Bearer tokens for scripts and operators."""


@tokens_group.command("issue")
@click.option("--email", required=True)
def issue_token(email: str) -> None:
    """Print a JWT for an existing, active user."""

    settings = settings_from_environment()
    user = with_pool(settings, lambda: service.find_user(email))
    if user is None or user.status != "active":
        raise click.ClickException(f"no active user {email}")
    signer = TokenSigner.from_secret(
        SecretStore.connect(settings).read(JWT_KEYS_PATH),
        issuer=settings.jwt_issuer,
        ttl_seconds=settings.jwt_ttl_seconds,
    )
    click.echo(signer.issue(user.id, generation=user.session_generation))


@cli.group("billing")
def billing_group() -> None:
    """The billing cycle."""


# What `make run` offers a newcomer to sign up to (development only): a metric and a plan with a trial.
DEMO_METRIC = billing.MetricDefinition(code="api_calls", name="API calls", aggregation="count")
DEMO_PLAN = billing.PlanDefinition(
    code="starter",
    name="Starter",
    currency="EUR",
    interval="month",
    trial_days=14,
    charges=[
        {"type": "flat", "amount_minor": 2900},
        {"type": "metered", "metric_code": "api_calls", "model": "per_unit", "unit_amount_minor": "0.1"},
    ],
)


@billing_group.command("seed-demo")
def seed_demo() -> None:
    """Create the demo catalogue (metric `api_calls`, plan `starter` with a 14-day trial) if it is not there."""

    async def seed() -> bool:
        await billing.create_metric(DEMO_METRIC)
        _, created = await billing.create_plan(DEMO_PLAN)
        return created

    created = with_pool(settings_from_environment(), seed)
    click.echo("demo plan `starter` created" if created else "demo plan `starter` already there")


@billing_group.command("run")
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]),
    default=None,
    help="Bill as if it were this moment (UTC unless an offset is given); default now.",
)
@click.option("--concurrency", type=click.IntRange(1, 32), default=4, show_default=True)
def billing_run(as_of: Any, concurrency: int) -> None:
    """Bill every subscription with a period boundary that has passed, exactly once each."""
    from datetime import UTC, datetime, timedelta

    settings = settings_from_environment()
    when = None if as_of is None else as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    grace = timedelta(seconds=settings.usage_grace_seconds)

    async def work() -> Any:
        moment = when or datetime.now(UTC)
        due = await billing.count_due(moment, grace)
        with click.progressbar(length=due, label=f"Billing {due} subscription(s)", show_pos=True) as bar:
            return await billing.run_cycle(moment, grace=grace, concurrency=concurrency, progress=bar.update)

    report = with_pool(settings, work, max_size=concurrency + 1)
    click.echo(
        f"subscriptions seen: {report.seen}, invoices created: {report.invoices_created}, "
        f"already billed: {report.already_billed}, drafts finalized: {report.drafts_finalized}, "
        f"failed: {len(report.failed)} ({report.duration.total_seconds():.1f} s)"
    )
    for subscription_id, reason in report.failed:
        click.echo(f"  failed {subscription_id}: {reason}", err=True)
    if report.failed:
        sys.exit(1)


@cli.group("partners")
def partners_group() -> None:
    """Resellers' commissions."""


@partners_group.command("close-month")
@click.option("--month", required=True, help="The month to close, YYYY-MM (one that has ended).")
def partners_close_month(month: str) -> None:
    """Close a month for every reseller with an agreement: statement lines, ledger journals. Safe to rerun."""

    settings = settings_from_environment()
    closing = billing.parse_month(month)

    async def work() -> Any:
        count = await billing.count_resellers_to_close()
        with click.progressbar(length=count, label=f"Closing {month} for {count} reseller(s)", show_pos=True) as bar:
            return await billing.close_month(closing, progress=bar.update)

    report = with_pool(settings, work)
    payable = ", ".join(f"{minor} {currency}" for currency, minor in sorted(report.payable_minor.items())) or "none"
    click.echo(
        f"month {report.month}: statements closed: {report.closed}, already closed: {report.already_closed}, "
        f"payable (minor units): {payable}"
    )
    if report.skipped or report.failed:
        click.echo(
            f"events skipped (recorded with their reason): {report.skipped}; resellers failed: {len(report.failed)}"
        )
        for reseller_id, reason in report.failed:
            click.echo(f"  reseller {reseller_id}: {reason} (retried by the next run)")


@cli.group("ledger")
def ledger_group() -> None:
    """The double-entry ledger."""


@ledger_group.command("verify")
def ledger_verify() -> None:
    """Check every journal balances and every tenant's receivable agrees with its invoices and payments."""

    report = with_pool(settings_from_environment(), billing.verify_ledger)
    click.echo(f"journals: {report.journals}, postings: {report.postings}")
    click.echo(f"unbalanced journals: {len(report.unbalanced_journals)}")
    for journal in report.unbalanced_journals:
        click.echo(f"  journal {journal.journal_id}: {journal.total} {journal.currency} off", err=True)
    click.echo(f"receivables disagreeing with invoices and payments: {len(report.receivable_differences)}")
    for owed in report.receivable_differences:
        click.echo(
            f"  tenant {owed.tenant_id} {owed.currency}: ledger {owed.ledger}, documents {owed.documents}",
            err=True,
        )
    click.echo(f"issued invoices without a journal: {len(report.invoices_without_journal)}")
    for invoice in report.invoices_without_journal:
        click.echo(f"  invoice {invoice.id} (tenant {invoice.tenant_id})", err=True)
    click.echo(f"escrows disagreeing with their milestones: {len(report.escrow_differences)}")
    for held in report.escrow_differences:
        click.echo(f"  escrow {held.escrow_id}: ledger {held.ledger}, documents {held.documents}", err=True)
    click.echo(f"payee postings not from a release: {len(report.payee_postings_without_release)}")
    click.echo(f"credit liabilities disagreeing with credit lots: {len(report.credit_liability_differences)}")
    for owed_credit in report.credit_liability_differences:
        click.echo(
            f"  tenant {owed_credit.tenant_id} {owed_credit.currency}: ledger {owed_credit.ledger}, "
            f"documents {owed_credit.documents}",
            err=True,
        )
    click.echo(f"dispute journals disagreeing with disputes: {len(report.dispute_differences)}")
    for disputed in report.dispute_differences:
        click.echo(
            f"  dispute {disputed.dispute_id} {disputed.journal} {disputed.account} {disputed.currency}: "
            f"ledger {disputed.ledger}, expected {disputed.expected}",
            err=True,
        )
    click.echo("ledger verified" if report.ok else "ledger has differences")
    if not report.ok:
        sys.exit(1)


@cli.group("backup")
def backup_group() -> None:
    """Database backups and restore drills (folder: CONTROLPLANE_BACKUP_DIR, default <devstack>/backups)."""


def _backup_settings() -> tuple[Settings, Path]:

    settings = settings_from_environment()
    if not settings.database_owner_url:
        raise click.ClickException("DATABASE_OWNER_URL is not set")
    return settings, backups.backup_dir(os.environ, devstack_root())


@backup_group.command("create")
def backup_create() -> None:
    """Dump the database (pg_dump -Fc, as the owner) with a sha256 and a manifest of row counts."""

    settings, directory = _backup_settings()
    try:
        backup = asyncio.run(backups.create_backup(settings.database_owner_url or "", directory))
    except (backups.BackupError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    manifest = backup.manifest
    rows = sum(manifest["row_counts"].values())
    click.echo(f"backup {backup.dump} ({manifest['size']} bytes, {rows} rows, sha256 {manifest['sha256']})")


@backup_group.command("restore-check")
def backup_restore_check() -> None:
    """Restore the newest backup into a scratch database and check checksum, row counts, ledger and RLS."""

    settings, directory = _backup_settings()
    owner_url = settings.database_owner_url or ""
    admin_url = os.environ.get(backups.ADMIN_URL_ENV) or backups.devstack_admin_url(devstack_root(), owner_url)
    drill = asyncio.run(backups.restore_check(owner_url, settings.database_url, directory, admin_url=admin_url))
    for name, detail in drill.details.items():
        click.echo(f"{name}: {detail}")
    for problem in drill.problems:
        click.echo(f"  {problem}", err=True)
    click.echo(f"restore drill of {drill.backup or 'no backup'}: {'passed' if drill.passed else 'FAILED'}")
    if not drill.passed:
        sys.exit(1)


def default_api_workers() -> int:
    """API processes: $API_WORKERS, else one per core (each serves requests on its own event loop)."""
    return int(os.environ.get("API_WORKERS") or os.cpu_count() or 1)


@cli.command("run")
@click.option("--port", type=int, default=lambda: int(os.environ.get("PORT", "8000")), show_default="8000 or $PORT")
@click.option(
    "--api-workers", type=click.IntRange(1, 64), default=default_api_workers, show_default="$API_WORKERS or cores"
)
def run(port: int, api_workers: int) -> None:
    """Start the dev stack (unless configured), migrate, and run the API, a worker and beat together."""

    root = devstack_root()
    stack = DevStack(root, api_port=port)
    env = {**os.environ, **stack.up(os.environ)}
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(root / "metrics"))
    Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
    for stale in Path(env["PROMETHEUS_MULTIPROC_DIR"]).glob("*.db"):
        stale.unlink()
    python = sys.executable
    try:
        _run_checked([python, "-m", "controlplane.cli", "db", "migrate"], env)
        _run_checked([python, "-m", "controlplane.cli", "billing", "seed-demo"], env)
        click.echo(
            f"\n  API     {env['CONTROLPLANE_URL']}/v1  (docs: {env['CONTROLPLANE_URL']}/schema; "
            f"{api_workers} processes)\n"
            f"  Console {env['CONTROLPLANE_URL']}/console/  (sign up at {env['CONTROLPLANE_URL']}/console/signup; "
            f"emails land in {root / 'mail'})\n"
            f"  Ready {env['CONTROLPLANE_URL']}/health/ready   Metrics {env['CONTROLPLANE_URL']}/metrics\n"
            "  A token, in another shell:\n"
            "    .venv/bin/controlplane users create --email you@example.com --role platform_staff\n"
            "    .venv/bin/controlplane tokens issue --email you@example.com\n"
        )
        code = run_foreground(
            {
                "api": [
                    python,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "controlplane.app:create_app_from_env",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    str(api_workers),
                ],
                "worker": [
                    python,
                    "-m",
                    "celery",
                    "-A",
                    "workers.celery_app",
                    "worker",
                    "--loglevel",
                    "INFO",
                    "--concurrency",
                    "2",
                ],
                "beat": [
                    python,
                    "-m",
                    "celery",
                    "-A",
                    "workers.celery_app",
                    "beat",
                    "--loglevel",
                    "INFO",
                    "--schedule",
                    str(root / "celerybeat-schedule"),
                ],
            },
            env,
        )
    finally:
        # A second Ctrl-C must not interrupt the shutdown and leave services running.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.down()
    # Stopped by Ctrl-C or SIGTERM (128 + signal number) is the normal way to end a dev session.
    sys.exit(0 if code in (128 + signal.SIGINT, 128 + signal.SIGTERM) else code)


def _run_checked(command: list[str], env: dict[str, str]) -> None:
    import subprocess

    if subprocess.run(command, env=env, check=False).returncode != 0:  # noqa: S603 (our own interpreter)
        raise click.ClickException(f"{' '.join(command[2:])} failed")


def _attach_devstack() -> None:

    cli.add_command(devstack)


_attach_devstack()


def _attach_secrets() -> None:

    cli.add_command(secrets_group)


_attach_secrets()


def _attach_readiness() -> None:

    cli.add_command(readiness_command(settings_from_environment, devstack_root))


_attach_readiness()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
