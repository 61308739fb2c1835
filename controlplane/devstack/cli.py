"""`controlplane devstack up | down | env | mail`: the embedded dev stack from the command line.

`up` and `env` print the stack's env as KEY=VALUE lines (progress goes to stderr), ready for
`set -a; eval "$(controlplane devstack up)"` or a Makefile `include`. `mail` lists the messages the dev mail
server kept, and `mail show ID` prints one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import click

from controlplane.devstack.errors import DevStackError
from controlplane.devstack.mail_store import MailStore
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

devstack = click.Group(
    "devstack", help="Local PostgreSQL, Redis, OpenBao, Stripe double and mail server for development."
)


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


@devstack.group("mail", invoke_without_command=True)
@root_option
@click.pass_context
def mail_group(context: click.Context, root: Path) -> None:
    """List the messages the dev mail server kept (oldest first): id, date, recipients, subject."""
    context.obj = MailStore(root / "mail")
    if context.invoked_subcommand is not None:
        return
    store: MailStore = context.obj
    summaries = store.summaries()
    if not summaries:
        click.echo(f"no messages in {store.folder}")
        return
    for mail in summaries:
        to = ", ".join(mail.rcpt_to) or mail.to
        click.echo(f"{mail.id}  {mail.received_at:%Y-%m-%d %H:%M:%S}Z  {to}  {mail.subject}")


@mail_group.command("show")
@click.argument("mail_id", metavar="ID")
@click.pass_obj
def mail_show_command(store: MailStore, mail_id: str) -> None:
    """Print one message: its headers, its text part, and its attachments by name and size."""
    try:
        message = store.read(mail_id)
    except LookupError as error:
        raise click.ClickException(str(error)) from error
    for name in ("Date", "From", "To", "Subject", "Message-ID"):
        if message[name] is not None:
            click.echo(f"{name}: {message[name]}")
    click.echo()
    text = message.get_body(preferencelist=("plain",))
    if text is not None:
        click.echo(str(text.get_content()).rstrip("\n"))
    else:
        click.echo("(no text part)")
    for part in message.iter_attachments():
        payload = part.get_payload(decode=True)
        size = len(payload) if isinstance(payload, bytes) else 0
        click.echo(f"attachment: {part.get_filename() or '(unnamed)'} ({part.get_content_type()}, {size} bytes)")
