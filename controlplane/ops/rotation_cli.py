"""`controlplane secrets …`: rotating the platform's secrets in OpenBao (see `controlplane.ops.rotation`)."""

from __future__ import annotations

import getpass
import sys

import click

from controlplane.core.errors import DomainError
from controlplane.core.secrets import SecretStore
from controlplane.ops import rotation
from controlplane.ops.environment import settings_from_environment


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name (some containers)
        return "cli"


@click.group("secrets")
def secrets_group() -> None:
    """The platform's secrets in OpenBao."""


@secrets_group.command("rotate")
@click.option(
    "--what",
    type=click.Choice(["jwt", "license", "pii", "db", "all"]),
    default="all",
    show_default=True,
    help=(
        "jwt: the API's token signing keys; license: the transit key that signs plugin licenses; pii: the transit "
        "key that wraps tenants' data keys, then every data key rewrapped (and older ciphertext moved to them); "
        "db: the app role's database password (OpenBao database engine, where BAO_DB_STATIC_ROLE is set)."
    ),
)
@click.option("--if-due", is_flag=True, help="Only rotate what is older than its rotation period (as beat does).")
def rotate_command(what: str, if_due: bool) -> None:
    """Rotate now. Safe to run twice: earlier keys keep verifying the tokens and licenses they signed."""

    settings = settings_from_environment()
    try:
        store = SecretStore.connect(settings)
    except DomainError as exc:
        raise click.ClickException(f"{exc.code}: {exc.detail}") from exc
    outcomes = rotation.rotate_configured(settings, store, rotation.parse_what(what), actor=_actor(), only_due=if_due)
    for outcome in outcomes:
        verb = {"success": "rotated", "skipped": "skipped", "failure": "FAILED"}[outcome.outcome]
        click.echo(f"{verb} {outcome.secret}: {outcome.detail}", err=outcome.outcome == "failure")
    if any(outcome.outcome == "failure" for outcome in outcomes):
        sys.exit(1)


@secrets_group.command("stripe-webhook")
@click.option(
    "--window-hours",
    type=click.IntRange(1, 24 * 7),
    default=24,
    show_default=True,
    help="How long the previous secret keeps verifying (match the expiry chosen when rolling it in Stripe).",
)
def stripe_webhook_command(window_hours: int) -> None:
    """Take in the endpoint's new signing secret after rolling it in Stripe; read from standard input (never an
    argument: arguments show in the process list). Safe to run twice."""
    from datetime import timedelta

    new_secret = (
        click.prompt("New webhook signing secret", hide_input=True) if sys.stdin.isatty() else sys.stdin.readline()
    )
    try:
        store = SecretStore.connect(settings_from_environment())
    except DomainError as exc:
        raise click.ClickException(f"{exc.code}: {exc.detail}") from exc
    outcome = rotation.take_in_stripe_webhook_secret(
        store, new_secret.strip(), window=timedelta(hours=window_hours), actor=_actor()
    )
    verb = {"success": "rotated", "skipped": "unchanged", "failure": "FAILED"}[outcome.outcome]
    click.echo(f"{verb} {outcome.secret}: {outcome.detail}", err=outcome.outcome == "failure")
    if outcome.outcome == "failure":
        sys.exit(1)
