"""The `controlplane` command against the test stack, as an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx


def _cli(stack_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **stack_env}
    return subprocess.run(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "controlplane.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_migrations_run_again_change_nothing(stack_env: dict[str, str]) -> None:
    result = _cli(stack_env, "db", "migrate")
    assert result.returncode == 0, result.stderr
    assert "No migrations need to be run" in result.stdout


async def test_an_issued_token_works_against_the_api(stack_env: dict[str, str], client: httpx.AsyncClient) -> None:
    created = _cli(
        stack_env,
        "users",
        "create",
        "--email",
        "Ops@Example.com",
        "--password",
        "long-enough-pass",
        "--role",
        "platform_staff",
    )
    assert created.returncode == 0, created.stderr
    assert "ops@example.com (platform_staff)" in created.stdout
    issued = _cli(stack_env, "tokens", "issue", "--email", "ops@example.com")
    assert issued.returncode == 0, issued.stderr
    response = await client.get("/v1/tenants", headers={"Authorization": f"Bearer {issued.stdout.strip()}"})
    assert response.status_code == 200, response.text


def test_operator_mistakes_are_clear_errors(stack_env: dict[str, str]) -> None:
    no_tenant = _cli(
        stack_env,
        "users",
        "create",
        "--email",
        "a@example.com",
        "--password",
        "long-enough-pass",
        "--role",
        "tenant_admin",
    )
    assert no_tenant.returncode == 2 and "tenant roles need --tenant" in no_tenant.stderr
    weak = _cli(
        stack_env, "users", "create", "--email", "a@example.com", "--password", "short", "--role", "platform_staff"
    )
    assert weak.returncode == 1 and "weak_password" in weak.stderr
    unknown = _cli(stack_env, "tokens", "issue", "--email", "nobody@example.com")
    assert unknown.returncode == 1 and "no active user" in unknown.stderr
