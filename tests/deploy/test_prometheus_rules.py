"""The alerting and recording rules pass `promtool check rules`, every alert has a unit test
in rules_test.yml that passes `promtool test rules`, and every dashboard query is valid PromQL
(checked by promtool as a recording rule)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.deploy._queries import (
    RULES_FILE,
    RULES_TEST_FILE,
    dashboard_expressions,
)

PROMTOOL_TIMEOUT_S = 60


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is missing: apt-get install -y prometheus"
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=PROMTOOL_TIMEOUT_S
    )


def test_rules_pass_promtool_check() -> None:
    done = _promtool("check", "rules", str(RULES_FILE))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_rule_unit_tests_pass() -> None:
    done = _promtool("test", "rules", str(RULES_TEST_FILE))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_unit_test() -> None:
    rules = yaml.safe_load(RULES_FILE.read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load(RULES_TEST_FILE.read_text())["tests"]
    tested = {t["alertname"] for case in tests for t in case.get("alert_rule_test", [])}
    firing = {
        t["alertname"]
        for case in tests
        for t in case.get("alert_rule_test", [])
        if t.get("exp_alerts")
    }
    assert alerts == tested, alerts ^ tested
    assert alerts == firing, f"alerts never shown firing: {alerts - firing}"


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    exprs = [e for board in dashboard_expressions().values() for e in board]
    assert exprs
    rules = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [
                    {"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    as_rules = tmp_path / "dashboard_queries.yml"
    as_rules.write_text(yaml.safe_dump(rules))
    done = _promtool("check", "rules", str(as_rules))
    assert done.returncode == 0, done.stdout + done.stderr
