"""A dev SMTP server (aiosmtpd) on 127.0.0.1 that keeps each message under root/mail as an .eml file and
delivers nothing; `controlplane devstack mail` lists and shows them."""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

from controlplane.devstack.processes import ProcessRecord, spawn

_REPO = Path(__file__).resolve().parents[2]
# The sender of the dev stack's mail; its domain names the messages (Message-ID).
DEV_MAIL_FROM = "Control plane <no-reply@controlplane.localhost>"


class MailService:
    name = "mail"
    provides = ("SMTP_URL", "MAIL_FROM")
    port_names = ("smtp",)
    stop_signal = signal.SIGTERM  # each message is written atomically: stopping loses none that was accepted

    def __init__(self, root: Path) -> None:
        self.dir = root / "mail"
        self.log = self.dir / "server.log"

    def start(self, ports: Mapping[str, int]) -> ProcessRecord:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "controlplane.devstack.mail_server",
            "--host", "127.0.0.1",
            "--port", str(ports["smtp"]),
            "--store", str(self.dir),
        ]  # fmt: skip
        # The repo on PYTHONPATH so `-m controlplane...` resolves even without an installed package.
        pythonpath = os.pathsep.join(filter(None, [str(_REPO), os.environ.get("PYTHONPATH")]))
        return spawn(command, self.log, env={**os.environ, "PYTHONPATH": pythonpath}, cwd=self.dir)

    def is_ready(self, ports: Mapping[str, int]) -> bool:
        # The server's greeting: a 220 line once it is serving.
        try:
            with socket.create_connection(("127.0.0.1", ports["smtp"]), timeout=1) as connection:
                return connection.recv(64).startswith(b"220")
        except OSError:
            return False

    def bootstrap(self, ports: Mapping[str, int]) -> dict[str, str]:
        return {"SMTP_URL": f"smtp://127.0.0.1:{ports['smtp']}", "MAIL_FROM": DEV_MAIL_FROM}
