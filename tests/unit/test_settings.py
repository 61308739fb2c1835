import subprocess
import sys

import pytest

from controlplane.core.settings import Settings, SettingsError

SAFE_PRODUCTION = {
    "CONTROLPLANE_ENV": "production",
    "DATABASE_URL": "postgresql://app:s3cret-app@db.internal/controlplane",
    "DATABASE_OWNER_URL": "postgresql://owner:s3cret-owner@db.internal/controlplane",
    "REDIS_URL": "redis://redis.internal:6379/0",
    "BAO_ADDR": "https://bao.internal:8200",
    "BAO_ROLE_ID": "role",
    "BAO_SECRET_ID": "secret",
    "SMTP_URL": "smtps://mailer:s3cret-mail@smtp.example.com",
    "MAIL_FROM": "Control plane <billing@example.com>",
    "PUBLIC_URL": "https://console.example.com",
    "FORWARDED_ALLOW_IPS": "10.0.0.0/19,10.0.32.0/19",
}


def test_safe_production_settings_have_no_problems() -> None:
    assert Settings.from_env(SAFE_PRODUCTION).production_problems() == []


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ({"CONTROLPLANE_DEBUG": "true"}, "DEBUG"),
        ({"STRIPE_API_BASE": "http://127.0.0.1:8420"}, "local Stripe"),
        ({"BAO_ROLE_ID": "", "BAO_TOKEN": "root"}, "root token"),
        ({"DATABASE_URL": "postgresql://app@db.internal/controlplane"}, "DATABASE_URL has a missing"),
        ({"DATABASE_URL": SAFE_PRODUCTION["DATABASE_OWNER_URL"]}, "must use the app role"),
        ({"SMTP_URL": ""}, "SMTP_URL is not set"),
        ({"MAIL_FROM": ""}, "MAIL_FROM is not set"),
        ({"SMTP_URL": "smtp://mailer:s3cret@smtp.example.com:587"}, "password without TLS"),
        ({"PUBLIC_URL": ""}, "PUBLIC_URL"),
        ({"PUBLIC_URL": "http://console.example.com"}, "PUBLIC_URL"),
        ({"RATE_LIMIT_ENABLED": "false"}, "RATE_LIMIT_ENABLED is off"),
        # Behind the ingress, uvicorn only takes a client's address from X-Forwarded-For sent by these: unset,
        # every client is the ingress's one address (one budget; one client's failed sign-ins refuse all).
        ({"FORWARDED_ALLOW_IPS": ""}, "FORWARDED_ALLOW_IPS is not set"),
        # Trusting everyone, uvicorn takes the address a client wrote first in X-Forwarded-For.
        ({"FORWARDED_ALLOW_IPS": "*"}, "FORWARDED_ALLOW_IPS trusts every"),
        ({"FORWARDED_ALLOW_IPS": "10.0.0.0/8, 0.0.0.0/0"}, "FORWARDED_ALLOW_IPS trusts every"),
    ],
)
def test_unsafe_production_settings_are_named(override: dict[str, str], problem: str) -> None:
    problems = Settings.from_env({**SAFE_PRODUCTION, **override}).production_problems()
    assert any(problem.lower() in p.lower() for p in problems), problems


def test_development_settings_are_never_refused() -> None:
    assert Settings.from_env({"CONTROLPLANE_DEBUG": "1", "BAO_TOKEN": "root"}).production_problems() == []


def test_unknown_environment_is_an_error() -> None:
    with pytest.raises(SettingsError, match="CONTROLPLANE_ENV"):
        Settings.from_env({"CONTROLPLANE_ENV": "staging"})


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.debug = True  # type: ignore[misc]


def _start_in_production(**overrides: str) -> subprocess.CompletedProcess[str]:
    env = {**SAFE_PRODUCTION, **overrides, "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-c", "from controlplane.app import create_app_from_env; create_app_from_env()"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_production_process_refuses_to_start_with_debug_on() -> None:
    result = _start_in_production(CONTROLPLANE_DEBUG="1")
    assert result.returncode != 0
    assert "refusing to start in production" in result.stderr
    assert "CONTROLPLANE_DEBUG" in result.stderr


def test_the_production_process_refuses_to_start_with_rate_limiting_off() -> None:
    result = _start_in_production(RATE_LIMIT_ENABLED="false")
    assert result.returncode != 0
    assert "RATE_LIMIT_ENABLED is off" in result.stderr
