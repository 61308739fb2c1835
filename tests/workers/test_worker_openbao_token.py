"""A worker logs in to OpenBao once per process and reuses its token across task runs (kept alive as the API's)."""

from __future__ import annotations

import uuid
from pathlib import Path

import hvac
import pytest

from tests.workers._worker import running_worker


def _approle_logins(root: hvac.Client, role: str) -> int:
    """Tokens OpenBao issued to logins with `role` (each login makes one), found through the token accessors."""
    accessors = root.auth.token.list_accessors()["data"]["keys"]
    metas = [(root.auth.token.lookup_accessor(accessor)["data"].get("meta") or {}) for accessor in accessors]
    return sum(1 for meta in metas if meta.get("role_name") == role)


def test_a_worker_logs_in_to_openbao_once_for_all_its_task_runs(
    stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = hvac.Client(url=stack_env["BAO_ADDR"], token=stack_env["BAO_TOKEN"])
    if "approle/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("approle")
    policy = (Path(__file__).resolve().parents[2] / "deploy/openbao/controlplane-app.hcl").read_text()
    root.sys.create_or_update_policy("controlplane-app", policy)
    role = f"worker-{uuid.uuid4().hex[:8]}"
    root.auth.approle.create_or_update_approle(role, token_policies=["controlplane-app"])
    role_id = root.auth.approle.read_role_id(role)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id(role)["data"]["secret_id"]

    log = tmp_path_factory.mktemp("worker-approle") / "worker.log"
    approle = {"BAO_ROLE_ID": role_id, "BAO_SECRET_ID": secret_id}
    with running_worker(stack_env, log, unset=("BAO_TOKEN",), extra_env=approle) as worker:
        # Both tasks use OpenBao (the tenants' webhook signing secrets); nothing is due, so nothing is posted.
        for _ in range(2):
            report = worker.send_task("controlplane.webhooks.deliver").get(timeout=60)
            assert report["failed"] == 0, report
    assert _approle_logins(root, role) == 1, log.read_text()
