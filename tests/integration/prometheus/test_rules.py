"""The alerting and recording rules pass ``promtool check rules`` and their unit tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

RULES = Path(__file__).resolve().parents[3] / "monitoring" / "prometheus"


def test_rules_are_valid(promtool: str) -> None:
    done = subprocess.run(
        [promtool, "check", "rules", str(RULES / "drift-monitor.rules.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_fires_and_stays_quiet_in_its_unit_tests(promtool: str) -> None:
    tests = sorted((RULES / "tests").glob("*.test.yml"))
    assert tests
    done = subprocess.run(
        [promtool, "test", "rules", *map(str, tests)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=RULES / "tests",
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    import yaml

    rules = yaml.safe_load((RULES / "drift-monitor.rules.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in (RULES / "tests").glob("*.test.yml"):
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert alerts == {
        "DriftMonitorDetectionStale",
        "DriftMonitorModelError",
        "DriftMonitorIngestErrors",
        "DriftMonitorDeadLetters",
        "DriftMonitorDriftDetected",
    }
    assert alerts <= firing, alerts - firing
    assert alerts <= quiet, alerts - quiet
