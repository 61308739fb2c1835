"""A Stripe API double: localstripe on 127.0.0.1, its objects kept under root/stripe across restarts."""

from __future__ import annotations

import os
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from controlplane.devstack.processes import ProcessRecord, spawn

_REPO = Path(__file__).resolve().parents[2]


class StripeService:
    name = "stripe"
    provides = ("STRIPE_API_BASE",)
    port_names = ("stripe",)
    stop_signal = signal.SIGTERM

    def __init__(self, root: Path) -> None:
        self.dir = root / "stripe"
        self.log = self.dir / "localstripe.log"

    def start(self, ports: Mapping[str, int]) -> ProcessRecord:
        self.dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "controlplane.devstack.localstripe_server",
            "--host", "127.0.0.1",
            "--port", str(ports["stripe"]),
            "--store", str(self.dir / "store.pickle"),
        ]  # fmt: skip
        # The repo on PYTHONPATH so `-m controlplane...` resolves even without an installed package.
        pythonpath = os.pathsep.join(filter(None, [str(_REPO), os.environ.get("PYTHONPATH")]))
        return spawn(command, self.log, env={**os.environ, "PYTHONPATH": pythonpath}, cwd=self.dir)

    def is_ready(self, ports: Mapping[str, int]) -> bool:
        # Any HTTP answer will do (localstripe says 401 without a key): the app is up and routing.
        try:
            with urllib.request.urlopen(f"{_base(ports)}/v1/customers", timeout=1):  # noqa: S310  # nosec B310
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def bootstrap(self, ports: Mapping[str, int]) -> dict[str, str]:
        return {"STRIPE_API_BASE": _base(ports)}


def _base(ports: Mapping[str, int]) -> str:
    return f"http://127.0.0.1:{ports['stripe']}"
