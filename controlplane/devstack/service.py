"""What the stack needs from each embedded service."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from controlplane.devstack.processes import ProcessRecord


class Service(Protocol):
    # Read-only members, so plain class attributes (tuples of any length, signal enums) satisfy them.
    @property
    def name(self) -> str:
        """Key in state.json and folder under the root."""
        ...

    @property
    def provides(self) -> tuple[str, ...]:
        """Env keys; when the first is configured, the service is not started."""
        ...

    @property
    def port_names(self) -> tuple[str, ...]:
        """Ports to choose at first start and keep."""
        ...

    @property
    def stop_signal(self) -> int: ...

    @property
    def log(self) -> Path: ...

    def start(self, ports: Mapping[str, int]) -> ProcessRecord:
        """Prepare on-disk state if new and launch the server detached; do not wait for it."""
        ...

    def is_ready(self, ports: Mapping[str, int]) -> bool:
        """Whether the server answers (cheap; polled)."""
        ...

    def bootstrap(self, ports: Mapping[str, int]) -> dict[str, str]:
        """Idempotently create what the control plane expects, and return the env that reaches it."""
        ...
