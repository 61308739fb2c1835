"""DevStack: start the services the control plane needs, under one root folder, when no URL is given."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Mapping
from functools import partial
from pathlib import Path

from controlplane.devstack.errors import DevStackError
from controlplane.devstack.mail_service import MailService
from controlplane.devstack.openbao_service import OpenBaoService
from controlplane.devstack.postgres_service import PostgresService
from controlplane.devstack.processes import free_port, is_running, port_is_free, stop_all, wait_until_ready
from controlplane.devstack.redis_service import RedisService
from controlplane.devstack.service import Service
from controlplane.devstack.state import StackState, exclusive
from controlplane.devstack.stripe_service import StripeService

logger = logging.getLogger(__name__)


class DevStack:
    """PostgreSQL, Redis, OpenBao, a Stripe double and an SMTP server that keeps what it receives, as real
    local processes, data kept in `root`.

    `durable=False` (the test suite's stack) runs PostgreSQL without fsync: fast, and lost on a crash.

    Layout: root/state.json (ports, pids, env; 0600), root/<service>/ (data, logs, credentials).
    """

    def __init__(self, root: Path, *, api_port: int = 8000, durable: bool = True) -> None:
        self.root = Path(root).resolve()
        self.api_port = api_port
        self.state_file = self.root / "state.json"
        # The order of start-up and of the env (down stops them all at once).
        self.services: tuple[Service, ...] = (
            PostgresService(self.root, durable=durable),
            RedisService(self.root),
            OpenBaoService(self.root),
            StripeService(self.root),
            MailService(self.root),
        )

    def up(self, configured: Mapping[str, str] = os.environ) -> dict[str, str]:
        """Start each service whose URL is not in `configured`, wait until it answers, bootstrap it,
        record pids/ports in root/state.json, and return the env for the whole stack (values of
        configured services are passed through). Reuses services that are already running."""
        with exclusive(self.root):
            state = StackState.load(self.state_file)
            env_of: dict[str, dict[str, str]] = {}  # per service, assembled in service order at the end
            ours: list[Service] = []
            for service in self.services:
                given = _configured_values(service, configured)
                if given is None:
                    ours.append(service)
                else:
                    env_of[service.name] = given

            # Launch everything first, then wait: the slow starters (initdb, raft) overlap.
            for service in ours:
                record = state.processes.get(service.name)
                if record is not None and is_running(record):
                    logger.info("%s: already running (pid %d)", service.name, record.pid)
                    continue
                _choose_ports(service, state)
                logger.info("%s: starting", service.name)
                state.processes[service.name] = service.start(state.ports)
                state.save(self.state_file)  # at once, so a later failure cannot orphan this process

            for service in ours:
                started = time.monotonic()
                ready = partial(service.is_ready, state.ports)
                wait_until_ready(service.name, ready, state.processes[service.name], service.log)
                env_of[service.name] = service.bootstrap(state.ports)
                logger.info("%s: ready (%.1f s)", service.name, time.monotonic() - started)

            env = {key: value for service in self.services for key, value in env_of[service.name].items()}
            env["CONTROLPLANE_URL"] = configured.get("CONTROLPLANE_URL") or f"http://127.0.0.1:{self.api_port}"
            state.env = env
            state.save(self.state_file)
            return dict(env)

    def down(self) -> None:
        """Stop every service this root started; idempotent. Data and chosen ports stay in root."""
        if not self.state_file.exists():
            return
        with exclusive(self.root):
            state = StackState.load(self.state_file)
            # All at once: the services do not need each other to shut down, and waits then overlap.
            stop_signals = {service.name: service.stop_signal for service in self.services}
            logger.info("stopping %s", ", ".join(state.processes) or "nothing")
            stop_all({record: stop_signals.get(name, signal.SIGTERM) for name, record in state.processes.items()})
            state.processes = {}
            state.env = {}
            state.save(self.state_file)

    def env(self) -> dict[str, str]:
        """The env of the running stack, from state.json; DevStackError if it is not (all) up."""
        state = StackState.load(self.state_file)
        if not state.env:
            raise DevStackError(f"the dev stack in {self.root} is not up; run `controlplane devstack up`")
        stopped = sorted(name for name, record in state.processes.items() if not is_running(record))
        if stopped:
            raise DevStackError(
                f"the dev stack in {self.root} is not fully up ({', '.join(stopped)} stopped); "
                "run `controlplane devstack up`"
            )
        return dict(state.env)


def _configured_values(service: Service, configured: Mapping[str, str]) -> dict[str, str] | None:
    """The service's env taken from `configured`, or None if we must run it ourselves."""
    url_key = service.provides[0]
    if not configured.get(url_key):  # unset or empty: `REDIS_URL= make run` means "start one"
        return None
    missing = [key for key in service.provides if not configured.get(key)]
    if missing:
        raise DevStackError(f"{url_key} is configured but {', '.join(missing)} is not: set all or none")
    return {key: configured[key] for key in service.provides}


def _choose_ports(service: Service, state: StackState) -> None:
    """Keep the ports of the last run when still free, so URLs stay stable; else pick new ones."""
    for name in service.port_names:
        recorded = state.ports.get(name)
        if recorded is not None and port_is_free(recorded):
            continue
        taken = {port for other, port in state.ports.items() if other != name}
        state.ports[name] = free_port(taken)
