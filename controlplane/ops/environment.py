"""What every CLI command needs first: the settings, and the dev stack's values where the environment
leaves a service unset."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from controlplane.core.db_credentials import run_with_app_pool
from controlplane.core.settings import Settings, SettingsError
from controlplane.devstack import DevStack, DevStackError

REPO_ROOT = Path(__file__).resolve().parents[2]


def devstack_root() -> Path:
    return Path(os.environ.get("CONTROLPLANE_DEVSTACK_DIR", REPO_ROOT / ".devstack"))


def settings_from_environment() -> Settings:
    """Settings from the environment; what it leaves unset comes from a running dev stack, if any."""
    environ = dict(os.environ)
    if "DATABASE_URL" not in environ:
        try:
            environ = {**DevStack(devstack_root()).env(), **environ}
        except DevStackError:
            pass
    try:
        settings = Settings.from_env(environ)
        settings.require_services()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    return settings


def with_pool(settings: Settings, work: Callable[[], Awaitable[Any]], *, max_size: int = 2) -> Any:
    return run_with_app_pool(settings, work, max_size=max_size)
