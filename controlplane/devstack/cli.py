"""`controlplane devstack up | down | env`: the embedded dev stack from the command line.

`up` and `env` print the stack's env as KEY=VALUE lines (progress goes to stderr), ready for
`set -a; eval "$(controlplane devstack up)"` or a Makefile `include`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import click

from controlplane.devstack.errors import DevStackError
from controlplane.devstack.stack import DevStack

# The repository holding the `controlplane` package: .devstack/ sits beside it (and is git-ignored).
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / ".devstack"

root_option = click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="CONTROLPLANE_DEVSTACK_DIR",
    default=DEFAULT_ROOT,
    show_default=True,
    help="Folder holding the services' data, logs and state (env: CONTROLPLANE_DEVSTACK_DIR).",
)

devstack = click.Group("devstack", help="Local PostgreSQL, Redis, OpenBao and Stripe double for development.")


@devstack.command("up")
@root_option
@click.option("--api-port", type=int, default=8000, show_default=True, help="Port of CONTROLPLANE_URL.")
def up_command(root: Path, api_port: int) -> None:
    """Start every service whose URL is not set in the environment, and print the stack's env."""
    logging.basicConfig(level=logging.INFO, format="devstack: %(message)s")  # stderr
    try:
        env = DevStack(root, api_port=api_port).up(os.environ)
    except DevStackError as error:
        raise click.ClickException(str(error)) from error
    _print_env(env)


@devstack.command("down")
@root_option
def down_command(root: Path) -> None:
    """Stop every service started under the root; data is kept."""
    logging.basicConfig(level=logging.INFO, format="devstack: %(message)s")
    try:
        DevStack(root).down()
    except DevStackError as error:
        raise click.ClickException(str(error)) from error


@devstack.command("env")
@root_option
def env_command(root: Path) -> None:
    """Print the env of the running stack."""
    try:
        env = DevStack(root).env()
    except DevStackError as error:
        raise click.ClickException(str(error)) from error
    _print_env(env)


def _print_env(env: Mapping[str, str]) -> None:
    for key, value in env.items():
        click.echo(f"{key}={value}")
