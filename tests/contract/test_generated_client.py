"""The OpenAPI document generates a whole Python client with openapi-python-client.

The generator prints a warning for what it cannot generate (two schemas with one title, a reference it cannot
resolve, a body or response it does not support) and then leaves that endpoint, response or model out of the
client. So it must print nothing but its "Generating" line, and every operation of the document must have its
endpoint module, handling every status the document lists; the generated package must import.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

from httpx import AsyncClient

GENERATOR = Path(sys.executable).with_name("openapi-python-client")
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# Any attempt to reach the network fails at once instead of leaving the machine.
NO_NETWORK = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
IMPORT_ALL = (
    "import importlib, pkgutil, control_plane_client as c; "
    "[importlib.import_module(m.name) for m in pkgutil.walk_packages(c.__path__, 'control_plane_client.')]"
)


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **NO_NETWORK, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)  # noqa: S603


def _generated_operations(client: Path) -> dict[tuple[str, str], set[str]]:
    """(method, path) -> the statuses its `_parse_response` handles, for every generated endpoint module."""
    operations = {}
    for module in sorted((client / "api").glob("*/*.py")):
        if module.name == "__init__.py":
            continue
        source = module.read_text()
        method = re.search(r'"method": "(\w+)"', source)
        url = re.search(r'"url": f?"([^"]*)"', source)
        assert method and url, f"{module}: no method or url found in the generated module"
        operations[(method[1], url[1])] = set(re.findall(r"response\.status_code == (\d+)", source))
    return operations


async def test_the_document_generates_a_complete_python_client(unstarted_client: AsyncClient, tmp_path: Path) -> None:
    response = await unstarted_client.get("/schema/openapi.json")
    assert response.status_code == 200, response.text
    document = response.json()
    (tmp_path / "openapi.json").write_bytes(response.content)
    # No post hooks: the generated code is not formatted (ruff), which the checks below do not need. A PDF is
    # bytes to a client: the generator knows that of application/octet-stream only.
    (tmp_path / "config.yaml").write_text(
        "post_hooks: []\ncontent_type_overrides:\n  application/pdf: application/octet-stream\n"
    )
    command = [str(GENERATOR), "generate", "--path", "openapi.json", "--config", "config.yaml"]
    command += ["--output-path", "control_plane_client", "--meta", "none", "--fail-on-warning"]

    generated = await asyncio.to_thread(_run, command, tmp_path)

    printed = [line for line in (generated.stdout + generated.stderr).splitlines() if line.strip()]
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert printed == ["Generating control_plane_client"], generated.stdout + generated.stderr

    documented = {
        (method, path): {status for status in operation["responses"] if status.isdigit()}
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if method in METHODS
    }
    assert len(documented) >= 90, sorted(documented)
    operations = _generated_operations(tmp_path / "control_plane_client")
    assert {key: operations.get(key) for key in documented} == documented
    assert set(operations) == set(documented)

    imported = await asyncio.to_thread(_run, [sys.executable, "-c", IMPORT_ALL], tmp_path)
    assert imported.returncode == 0, imported.stderr
