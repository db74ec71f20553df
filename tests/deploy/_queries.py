"""The PromQL expressions of infra/deploy/ and the metric names they use."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "infra" / "deploy"
RULES_FILE = DEPLOY_DIR / "prometheus" / "rules.yml"
RULES_TEST_FILE = DEPLOY_DIR / "prometheus" / "rules_test.yml"
DASHBOARDS_DIR = DEPLOY_DIR / "grafana" / "dashboards"
# Series Prometheus makes itself, not the service.
PROMETHEUS_OWN = frozenset({"up"})
# A metric name in PromQL: recording rules (`coalition:...`) have colons and are not matched.
METRIC_NAME = re.compile(r"\b(coalition_[a-z0-9_]+|up)\b")


def rule_expressions() -> list[str]:
    document = yaml.safe_load(RULES_FILE.read_text())
    return [rule["expr"] for group in document["groups"] for rule in group["rules"]]


def dashboard_expressions() -> dict[str, list[str]]:
    """Each dashboard file's expressions, panel by panel."""
    found: dict[str, list[str]] = {}
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        board = json.loads(path.read_text())
        found[path.name] = [
            target["expr"] for panel in board["panels"] for target in panel.get("targets", [])
        ]
    return found


def metric_names(expressions: list[str]) -> set[str]:
    return {name for expr in expressions for name in METRIC_NAME.findall(expr)}
