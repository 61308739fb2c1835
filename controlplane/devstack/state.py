"""root/state.json: the ports chosen at first start, the processes running now, and the stack's env.

Ports outlive `down` so a restarted stack keeps its URLs; processes are forgotten once stopped.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from controlplane.devstack.files import read_json, write_private_json
from controlplane.devstack.processes import ProcessRecord


@dataclass
class StackState:
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, ProcessRecord] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> StackState:
        if not path.exists():
            return cls()
        data = read_json(path)
        return cls(
            ports={name: int(port) for name, port in data.get("ports", {}).items()},
            processes={name: ProcessRecord.from_json(record) for name, record in data.get("processes", {}).items()},
            env=dict(data.get("env", {})),
        )

    def save(self, path: Path) -> None:
        # 0600: the env holds database passwords and the OpenBao root token.
        write_private_json(
            path,
            {
                "ports": self.ports,
                "processes": {name: record.to_json() for name, record in self.processes.items()},
                "env": self.env,
            },
        )


@contextmanager
def exclusive(root: Path) -> Iterator[None]:
    """Serialise up/down on one root, e.g. `make run` and a test session starting at the same time."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
