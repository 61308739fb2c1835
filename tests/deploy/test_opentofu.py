"""The OpenTofu deployment under deploy/opentofu passes its validator (hcl2 parse, structure, checkov, fmt),
and the validator really fails on a broken copy, naming the file and the rule."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CHECKOV = REPO / ".tools" / "checkov" / "bin" / "checkov"


def _validate(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "deploy.opentofu.validate", "--checkov", str(CHECKOV), *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False, timeout=300)  # noqa: S603


def _broken_copy(tmp_path: Path) -> Path:
    """A copy of deploy/ (the monitoring module reads ../prometheus and ../grafana), to break at will."""
    copy = tmp_path / "deploy"
    shutil.copytree(DEPLOY, copy, ignore=shutil.ignore_patterns(".terraform*", "__pycache__", "*.pyc"))
    return copy / "opentofu"


@pytest.fixture(scope="module")
def checkov() -> Path:
    if not CHECKOV.is_file():
        pytest.fail(f"checkov is installed by `make install` at {CHECKOV}")
    return CHECKOV


def test_the_deployment_passes_every_check(checkov: Path) -> None:
    result = _validate()
    out = result.stdout + result.stderr
    assert result.returncode == 0, out

    parsed = re.search(r"parse: (\d+) files parsed, (\d+) failed", out)
    assert parsed and int(parsed[1]) > 20 and parsed[2] == "0", out
    assert "structure: " in out and " 0 problems" in out, out
    counts = re.search(r"checkov: passed=(\d+) failed=(\d+) skipped=(\d+)", out)
    assert counts, out
    passed, failed, skipped = (int(n) for n in counts.groups())
    assert failed == 0 and passed > 100, out
    # Each skip is named with its reason; today only beat's probes (it serves nothing to probe).
    skip_lines = re.findall(r"^  skipped (CKV\S+) on (\S+): (.+)$", out, flags=re.M)
    assert skipped >= len(skip_lines) > 0
    assert all(reason.strip() and reason != "NO REASON" for _, _, reason in skip_lines), out
    assert out.rstrip().endswith("OK")


def test_the_structure_check_names_a_secret_default_and_a_wrong_module_source(tmp_path: Path) -> None:
    root = _broken_copy(tmp_path)
    variables = root / "modules" / "postgres" / "variables.tf"
    variables.write_text(
        variables.read_text()
        + '\nvariable "db_password" {\n  description = "Oops"\n  type        = string\n  default     = "x"\n}\n'
    )
    main = root / "envs" / "staging" / "main.tf"
    main.write_text(main.read_text().replace('"../../modules/redis"', '"../../modules/redis-cluster"'))

    result = _validate("--root", str(root), "--skip-checkov")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "modules/postgres/variables.tf: variable db_password looks secret and must not have a default" in out
    assert "modules/postgres/variables.tf: variable db_password looks secret and must be sensitive = true" in out
    assert "envs/staging/main.tf: module redis source '../../modules/redis-cluster'" in out
    assert out.rstrip().endswith("FAILED: 3 problem(s)"), out


def test_the_api_takes_client_addresses_only_from_the_proxies_in_front_of_it() -> None:
    """Rate limits and failed-authentication blocking count client addresses. Behind the ingress, uvicorn
    (`--proxy-headers`) reads X-Forwarded-For only from FORWARDED_ALLOW_IPS (else 127.0.0.1): every pod is told
    which addresses are the proxies, a required list of networks that may not be everything."""
    sys.path.insert(0, str(REPO))
    from deploy.opentofu.validate import ROOT, parse_all

    parsed, problems = parse_all(ROOT)
    assert problems == []
    module = ROOT / "modules" / "controlplane"
    (env,) = [block["env"] for block in parsed[module / "main.tf"]["locals"] if "env" in block]
    assert env["FORWARDED_ALLOW_IPS"] == '${join(",", var.trusted_proxy_cidrs)}'
    (variable,) = [
        v["trusted_proxy_cidrs"] for v in parsed[module / "variables.tf"]["variable"] if "trusted_proxy_cidrs" in v
    ]
    assert "default" not in variable and variable["type"] == "${list(string)}"
    assert "0.0.0.0/0" in str(variable["validation"])
    for name in ("staging", "production"):
        (block,) = [
            m["controlplane"] for m in parsed[ROOT / "envs" / name / "main.tf"]["module"] if "controlplane" in m
        ]
        assert block.get("trusted_proxy_cidrs"), name


@pytest.mark.slow
def test_checkov_fails_a_publicly_accessible_database(tmp_path: Path, checkov: Path) -> None:
    root = _broken_copy(tmp_path)
    main = root / "modules" / "postgres" / "main.tf"
    text = main.read_text()
    assert "publicly_accessible    = false" in text
    main.write_text(text.replace("publicly_accessible    = false", "publicly_accessible    = true"))

    result = _validate("--root", str(root))
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert re.search(r"checkov: passed=\d+ failed=[1-9]", out), out
    assert re.search(r"checkov CKV_AWS_17 failed: modules/postgres/main\.tf:\d+-\d+ \S*aws_db_instance\.this", out), out
