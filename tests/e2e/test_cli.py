"""The `coalition` command: clear one-line failures, masked config, serve and stop cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jwt
import pytest

from gateway.tokens import OPERATOR_AUDIENCE, load_or_create
from infra import migrations
from tests.support.server import free_port

COMMAND_TIMEOUT_S = 60
READY_TIMEOUT_S = 60.0


def coalition(
    *args: str, env: dict[str, str], timeout_s: float = COMMAND_TIMEOUT_S
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=timeout_s,
        check=False,
    )


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COALITION_")}
    env.pop("DATABASE_URL", None)
    env.update({"COALITION_DATA_DIR": str(data_dir), **extra})
    return env


def assert_one_clear_line(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("coalition:")]
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]
    assert "Traceback" not in result.stderr


def test_unreachable_database_url_is_one_clear_line(tmp_path: Path) -> None:
    env = base_env(
        tmp_path,
        DATABASE_URL="postgresql://app:hunter2@127.0.0.1:1/none",
        COALITION_PORT=str(free_port()),
    )
    result = coalition("serve", env=env)
    assert_one_clear_line(result, "unreachable")
    assert "hunter2" not in result.stderr


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = coalition("serve", env=base_env(tmp_path, COALITION_PORT=str(port)))
    assert_one_clear_line(result, "already in use")


def test_unusable_data_dir_is_one_clear_line(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    env = base_env(not_a_dir, COALITION_PORT=str(free_port()))
    assert_one_clear_line(coalition("serve", env=env), "not a directory")


def test_bad_setting_is_one_clear_line(tmp_path: Path) -> None:
    assert_one_clear_line(
        coalition("config", env=base_env(tmp_path, COALITION_PORT="x")), "COALITION_PORT"
    )


def test_config_masks_secrets(tmp_path: Path) -> None:
    env = base_env(
        tmp_path,
        DATABASE_URL="postgresql://app:hunter2@db/c",
        COALITION_MASTER_KEY="super-secret-master-key",
    )
    result = coalition("config", env=env)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["master_key"] == "***"
    assert "hunter2" not in result.stdout
    assert "super-secret" not in result.stdout


def test_token_operator_mints_a_token_for_the_service_key(tmp_path: Path) -> None:
    result = coalition(
        "token", "operator", "--role", "finance", "--ttl", "120", env=base_env(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    key = load_or_create(tmp_path, None)
    claims = jwt.decode(
        result.stdout.strip(), key.public_key, algorithms=["EdDSA"], audience=OPERATOR_AUDIENCE
    )
    assert claims["role"] == "finance"
    assert claims["exp"] - claims["iat"] == 120


def test_bench_refuses_an_unknown_scenario_with_a_usage_error(tmp_path: Path) -> None:
    result = coalition("bench", "--scenario", "no-such-scenario", env=base_env(tmp_path))
    assert result.returncode == 2
    assert "no-such-scenario" in result.stderr


def wait_ready(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail("the service did not become ready")


def serve_once(data_dir: Path, port: int) -> str:
    """Start `coalition serve` on the embedded database, check it, Ctrl-C it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--demo", "--port", str(port)],
        env=base_env(data_dir),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", process)
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=COMMAND_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    return stdout


def test_serve_on_embedded_postgres_stops_cleanly_and_reuses_its_data(tmp_path: Path) -> None:
    first = serve_once(tmp_path, free_port())
    pgdata = tmp_path / "pgdata"
    assert f"{len(migrations.discover())} migration(s) applied" in first
    assert not (pgdata / "postmaster.pid").exists(), "embedded postgres still running"
    assert "demo network: 2 partners, 3 shoppers" in first
    second = serve_once(tmp_path, free_port())
    assert "0 migration(s) applied" in second
    assert "demo network: already seeded" in second
    assert not (pgdata / "postmaster.pid").exists()
