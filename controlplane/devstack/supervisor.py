"""Run several long-lived commands in the foreground as one unit (uvicorn + celery worker + beat).

Each child leads its own process group, so Ctrl-C in the terminal reaches only us and we decide the
shutdown order: SIGTERM to every group, SIGKILL after a grace period. The first child to exit, or
SIGINT/SIGTERM to us, stops them all; nothing is left running when `run_foreground` returns.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType
from typing import IO

POLL_SECONDS = 0.1


def run_foreground(
    processes: Mapping[str, list[str]],
    env: Mapping[str, str],
    *,
    grace_seconds: float = 10.0,
) -> int:
    """Start each command, prefix each output line with its name, and return an exit code: the first
    child's to exit (128+N if killed by signal N), or 128+N when we were stopped by signal N.

    `env` is laid over the current environment (so PATH and HOME stay). Call from the main thread.
    """
    stopped_by: list[int] = []
    previous = {sig: signal.signal(sig, _remember(stopped_by)) for sig in (signal.SIGINT, signal.SIGTERM)}
    children: dict[str, subprocess.Popen[bytes]] = {}
    pumps: list[threading.Thread] = []
    try:
        width = max(map(len, processes), default=0)
        child_env = {"PYTHONUNBUFFERED": "1", **os.environ, **env}  # unbuffered: lines arrive as written
        for name, command in processes.items():
            child = subprocess.Popen(  # noqa: S603 - commands chosen by the caller
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=child_env,
                process_group=0,
            )
            children[name] = child
            assert child.stdout is not None
            pump = threading.Thread(target=_prefix_lines, args=(name.ljust(width), child.stdout), daemon=True)
            pump.start()
            pumps.append(pump)

        first_exit: int | None = None
        while not stopped_by and first_exit is None:
            for child in children.values():
                code = child.poll()
                if code is not None:
                    first_exit = code
                    break
            else:
                time.sleep(POLL_SECONDS)
    finally:
        _terminate_all(list(children.values()), grace_seconds)
        for pump in pumps:
            pump.join(timeout=1.0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    if stopped_by:
        return 128 + stopped_by[0]
    assert first_exit is not None
    return 128 - first_exit if first_exit < 0 else first_exit  # Popen reports death by signal N as -N


def _remember(stopped_by: list[int]) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        stopped_by.append(signum)

    return handler


_write_lock = threading.Lock()


def _prefix_lines(prefix: str, stream: IO[bytes]) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace").rstrip("\n")
        with _write_lock:  # one whole line at a time, never interleaved mid-line
            sys.stdout.write(f"{prefix} | {line}\n")
            sys.stdout.flush()
    stream.close()


def _terminate_all(children: list[subprocess.Popen[bytes]], grace_seconds: float) -> None:
    for child in children:
        _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    # SIGKILL whatever is left: leaders that ignored SIGTERM, and any of their own children still in
    # the group (e.g. celery's pool processes) after the leader has gone.
    for child in children:
        _signal_group(child, signal.SIGKILL)
    for child in children:
        child.wait()


def _signal_group(child: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(child.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
