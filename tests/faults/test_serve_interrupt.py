"""Ctrl-C of `coalition serve --demo` stops the embedded PostgreSQL too, also after an earlier
run of it was killed without any cleanup (which left that run in pgserver's list of handles,
and then no later Ctrl-C ever stopped the cluster)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from infra import embedded
from tests.support.server import free_port

READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 60.0


def serve(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """`coalition serve --demo` in a session of its own, as a terminal's foreground job."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COALITION_")}
    env.pop("DATABASE_URL", None)
    env["COALITION_DATA_DIR"] = str(data_dir)
    with (data_dir / f"serve-{port}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--demo", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, "serve exited before it was ready (see serve-*.log)"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("serve did not become ready")


def postmaster_pid(pgdata: Path) -> int | None:
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return None
    return int(pid_file.read_text().splitlines()[0])


def alive(pid: int) -> bool:
    """Running (a zombie is not: it has exited, and only waits for a parent to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def gone_soon(pid: int) -> bool:
    """The postmaster removes its pid file just before it exits: allow it that moment."""
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def test_ctrl_c_stops_the_embedded_postgres_even_after_a_crashed_run(tmp_path: Path) -> None:
    pgdata = tmp_path / "pgdata"
    try:
        first_port = free_port()
        crashed = serve(tmp_path, first_port)
        wait_ready(first_port, crashed)
        crashed.kill()  # kill -9: no cleanup of any kind runs
        crashed.wait(STOP_TIMEOUT_S)
        left_running = postmaster_pid(pgdata)
        assert left_running is not None, "the crashed run stopped the cluster"
        assert alive(left_running)

        port = free_port()
        second = serve(tmp_path, port)
        wait_ready(port, second)
        assert postmaster_pid(pgdata) == left_running  # the second run reused that cluster
        os.killpg(second.pid, signal.SIGINT)  # Ctrl-C: the whole foreground process group
        assert second.wait(STOP_TIMEOUT_S) in (0, 130)

        assert postmaster_pid(pgdata) is None, "embedded postgres still running after Ctrl-C"
        assert gone_soon(left_running)
    finally:
        leftover = postmaster_pid(pgdata)
        if leftover is not None and alive(leftover):
            embedded.start(tmp_path).stop()
