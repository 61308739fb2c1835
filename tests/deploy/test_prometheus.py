"""The Prometheus rules, scrape config and Grafana dashboard shipped in deploy/: valid, unit-tested by promtool,
and about metrics the control plane really exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from controlplane.core import metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "rules" / "controlplane.rules.yml"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is installed by `make install` (Debian package prometheus)"
    return subprocess.run([promtool, *args], capture_output=True, text=True, check=False, cwd=DEPLOY / "prometheus")  # noqa: S603


@pytest.mark.parametrize(
    "args",
    [("check", "rules", "rules/controlplane.rules.yml"), ("check", "config", "prometheus.yml")],
    ids=["rules", "config"],
)
def test_promtool_accepts(args: tuple[str, ...]) -> None:
    result = _promtool(*args)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alerts_fire_when_they_should_and_only_then() -> None:
    result = _promtool("test", "rules", "tests/controlplane.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _exported() -> set[str]:
    """Every series name the application can export (counters with _total, histograms with their parts)."""
    names: set[str] = set()
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        for family in value.describe():
            base = family.name
            names |= {base, f"{base}_total", f"{base}_bucket", f"{base}_sum", f"{base}_count", f"{base}_created"}
    return names


def _recorded() -> set[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}


def _series_in(expr: str) -> set[str]:
    return set(re.findall(r"\b(controlplane[:_][a-z0-9_:]+)", expr))


def test_rules_and_dashboard_only_read_series_that_exist() -> None:
    known = _exported() | _recorded()
    groups = yaml.safe_load(RULES.read_text())["groups"]
    exprs = [rule["expr"] for group in groups for rule in group["rules"]]
    dashboard = json.loads((DEPLOY / "grafana" / "controlplane.json").read_text())
    exprs += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = set().union(*(_series_in(expr) for expr in exprs))
    assert used, "no control plane series found in the rules or the dashboard"
    assert used - known == set()
    assert len(dashboard["panels"]) == len({panel["id"] for panel in dashboard["panels"]})
