"""What the stack needs from each embedded service."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from controlplane.devstack.processes import ProcessRecord


class Service(Protocol):
    name: str  # key in state.json and folder under the root
    provides: tuple[str, ...]  # env keys; when the first is configured, the service is not started
    port_names: tuple[str, ...]  # ports to choose at first start and keep
    stop_signal: int
    log: Path

    def start(self, ports: Mapping[str, int]) -> ProcessRecord:
        """Prepare on-disk state if new and launch the server detached; do not wait for it."""
        ...

    def is_ready(self, ports: Mapping[str, int]) -> bool:
        """Whether the server answers (cheap; polled)."""
        ...

    def bootstrap(self, ports: Mapping[str, int]) -> dict[str, str]:
        """Idempotently create what the control plane expects, and return the env that reaches it."""
        ...
