"""`controlplane secrets …`: rotating the platform's secrets in OpenBao (see `controlplane.rotation`)."""

from __future__ import annotations

import getpass
import sys

import click


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
    type=click.Choice(["jwt", "license", "all"]),
    default="all",
    show_default=True,
    help="jwt: the API's token signing keys; license: the transit key that signs plugin licenses.",
)
@click.option("--if-due", is_flag=True, help="Only rotate what is older than its rotation period (as beat does).")
def rotate_command(what: str, if_due: bool) -> None:
    """Rotate now. Safe to run twice: earlier keys keep verifying the tokens and licenses they signed."""
    from controlplane import rotation
    from controlplane.cli import _settings
    from controlplane.exceptions import DomainError
    from controlplane.secrets import SecretStore

    settings = _settings()
    try:
        store = SecretStore.connect(settings)
    except DomainError as exc:
        raise click.ClickException(f"{exc.code}: {exc.detail}") from exc
    outcomes = rotation.rotate(
        store,
        rotation.parse_what(what),
        overlap=rotation.jwt_overlap(settings),
        actor=_actor(),
        only_due=if_due,
    )
    for outcome in outcomes:
        verb = {"success": "rotated", "skipped": "skipped", "failure": "FAILED"}[outcome.outcome]
        click.echo(f"{verb} {outcome.secret}: {outcome.detail}", err=outcome.outcome == "failure")
    if any(outcome.outcome == "failure" for outcome in outcomes):
        sys.exit(1)
