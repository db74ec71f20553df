"""The Containerfile, infra/deploy/compose.yaml (against the Compose Specification schema with
check-jsonschema) and infra/deploy/k8s/ (with kubernetes-validate for KUBERNETES_VERSION)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.deploy._queries import DEPLOY_DIR

ROOT = DEPLOY_DIR.parents[1]
COMPOSE_FILE = DEPLOY_DIR / "compose.yaml"
K8S_DIR = DEPLOY_DIR / "k8s"
KUBERNETES_VERSION = "1.30.0"
TOOL_TIMEOUT_S = 120
BIN_DIR = Path(sys.executable).parent


def _tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN_DIR / name), *args], capture_output=True, text=True, timeout=TOOL_TIMEOUT_S
    )


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    done = _tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_refuses_a_broken_compose_file(tmp_path: Path) -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    compose["services"]["coalition"]["restart_policy"] = "always"  # not a Compose key
    broken = tmp_path / "compose.yaml"
    broken.write_text(yaml.safe_dump(compose))
    done = _tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(broken))
    assert done.returncode != 0
    assert "restart_policy" in done.stdout


def test_compose_runs_the_whole_stack() -> None:
    services: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    assert {
        "postgres-primary",
        "postgres-replica",
        "pgbouncer",
        "migrate",
        "coalition",
        "prometheus",
        "alertmanager",
        "grafana",
    } <= services.keys()
    assert services["postgres-primary"]["image"].startswith("postgres:16")
    assert services["postgres-replica"]["image"].startswith("postgres:16")
    app = services["coalition"]
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "@pgbouncer:" in app["environment"]["DATABASE_URL"]
    assert "coalition_replica" in app["environment"]["COALITION_REPLICA_URL"]
    assert "@postgres-primary:" in services["migrate"]["environment"]["DATABASE_URL"]
    ini = (DEPLOY_DIR / "pgbouncer" / "pgbouncer.ini").read_text()
    assert re.search(r"^pool_mode = transaction$", ini, re.M)
    assert int(re.findall(r"^max_prepared_statements = (\d+)$", ini, re.M)[0]) >= 1024
    replica_start = (DEPLOY_DIR / "postgres" / "start-replica.sh").read_text()
    assert "pg_basebackup" in replica_start
    assert " -R " in replica_start


def test_containerfile_is_multi_stage_non_root_with_a_health_check() -> None:
    text = (ROOT / "Containerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) >= 2
    final = stages[-1]
    assert "build-essential" not in final
    assert "gcc" not in final
    assert "COPY --from=build" in final
    assert re.search(r"^USER 10001", final, re.M)
    assert re.search(r"^HEALTHCHECK .*\n.*/healthz", final, re.M)


def test_kubernetes_manifests_validate_for_the_stated_version() -> None:
    manifests = sorted(str(p) for p in K8S_DIR.glob("*.yaml"))
    done = _tool("kubernetes-validate", "--strict", "-k", KUBERNETES_VERSION, *manifests)
    assert done.returncode == 0, done.stdout + done.stderr
    kinds = {yaml.safe_load(Path(p).read_text())["kind"] for p in manifests}
    assert {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "Job",
        "Secret",
        "CronJob",
    } <= kinds


def test_deployment_probes_and_requests() -> None:
    deployment = yaml.safe_load((K8S_DIR / "deployment.yaml").read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
