"""Detached service processes: start, recognise after a restart of the caller, stop, and pick ports.

Each service runs in its own session (so Ctrl-C in the terminal that ran `devstack up` does not reach
it) and is recorded by pid *and* start time, so a recycled pid is never mistaken for our service.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from controlplane.devstack.errors import DevStackError
from controlplane.devstack.files import log_tail

# Popen objects of the services this process started, kept so they can be reaped (no zombies, no
# "subprocess still running" warnings) when this same process stops them.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ProcessRecord:
    pid: int
    started_at: float  # the OS's process creation time, to tell our process from a recycled pid

    def to_json(self) -> dict[str, float | int]:
        return {"pid": self.pid, "started_at": self.started_at}

    @classmethod
    def from_json(cls, data: Mapping[str, float | int]) -> ProcessRecord:
        return cls(pid=int(data["pid"]), started_at=float(data["started_at"]))


@dataclass(frozen=True)
class RunAs:
    """The unprivileged account a service runs as when we are root (PostgreSQL refuses root)."""

    uid: int
    gid: int


def spawn(
    command: Sequence[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    run_as: RunAs | None = None,
) -> ProcessRecord:
    """Start `command` detached from our session, stdout and stderr appended to `log`."""
    import psutil  # devstack extra; imported late so the main CLI loads without it

    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        child = subprocess.Popen(  # noqa: S603 - fixed commands built by the dev stack
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            user=run_as.uid if run_as else None,
            group=run_as.gid if run_as else None,
            extra_groups=[] if run_as else None,
        )
    _children[child.pid] = child
    return ProcessRecord(pid=child.pid, started_at=psutil.Process(child.pid).create_time())


def is_running(record: ProcessRecord) -> bool:
    import psutil

    try:
        process = psutil.Process(record.pid)
        alive = process.status() != psutil.STATUS_ZOMBIE
        return alive and abs(process.create_time() - record.started_at) < 1.0
    except psutil.NoSuchProcess:
        return False


def stop_all(first_signals: Mapping[ProcessRecord, int], *, grace_seconds: float = 10.0) -> None:
    """Signal each service's process group, all at once, then SIGKILL what is left after the grace period.

    Records that are not running are left alone: their pid may belong to someone else by now.
    """
    running = [record for record in first_signals if is_running(record)]
    for record in running:
        _signal_group(record.pid, first_signals[record])
    survivors = _wait_for_exit(running, grace_seconds)
    for record in survivors:
        _signal_group(record.pid, signal.SIGKILL)
    if _wait_for_exit(survivors, 5.0):
        raise DevStackError(f"processes survived SIGKILL: {[record.pid for record in survivors]}")


def _wait_for_exit(records: list[ProcessRecord], seconds: float) -> list[ProcessRecord]:
    """Those of `records` still running after up to `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        for record in records:
            _reap(record.pid)
        records = [record for record in records if is_running(record)]
        if not records or time.monotonic() > deadline:
            return records
        time.sleep(0.05)


def _signal_group(pid: int, sig: int) -> None:
    # The group id is the pid because each service leads its own session (start_new_session).
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]


def wait_until_ready(
    name: str,
    ready: Callable[[], bool],
    record: ProcessRecord,
    log: Path,
    *,
    timeout_seconds: float = 60.0,
) -> None:
    """Poll `ready` until it answers True; fail fast, with the log's tail, if the process died."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        if ready():
            return
        if not is_running(record):
            raise DevStackError(f"{name} exited during start-up; tail of {log}:\n{log_tail(log)}")
        if time.monotonic() > deadline:
            raise DevStackError(
                f"{name} did not answer within {timeout_seconds:.0f} s; tail of {log}:\n{log_tail(log)}"
            )
        time.sleep(0.1)


def port_is_free(port: int) -> bool:
    # SO_REUSEADDR, as the servers use it: a port left in TIME_WAIT by our last run counts as free.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port(taken: set[int]) -> int:
    """A port that is free now and not among `taken` (ports already promised to other services)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in taken:
            return port
