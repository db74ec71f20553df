"""Server memory per worker under load (issue 7): RSS of each `coalition serve` worker process
before, during and after signed traffic.

    nice -n 19 .venv/bin/python -m tests.load.server_memory [--workers 2] [--duration-s 10]
        [--connections 64] [--scenario earn-spread --scenario checkout-mixed]

Starts a throwaway embedded PostgreSQL (deleted afterwards) unless DATABASE_URL is set, creates
and migrates a scratch database, starts `python -m gateway.cli serve --workers N` on a free
127.0.0.1 port (COALITION_DATA_DIR a temporary directory, background workers on), then drives
it with the project's own harness pointed at it: `coalition bench --target URL --skip-pgbench`
(gateway/bench: bulk shoppers, 10 partners over the operator API, wrk replaying pre-signed
requests, and its correctness check after each scenario). psutil samples every process of the
server (uvicorn's supervisor and each worker) twice a second: idle for 5 s before, for the whole
bench run, and for 5 s after. Prints a table and one JSON line; stops the server with SIGINT.

Not a test: nothing asserts but the bench's own correctness check (exit status 1 if it failed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gateway.bench import _server
from infra import embedded, migrations
from tests.load.ledger_bench import recreate

DATABASE = "server_memory"
IDLE_S = 5.0
SAMPLE_S = 0.5
BENCH_TIMEOUT_S = 600
MIB = 1024 * 1024


@dataclass
class Sampler:
    """RSS of the server's process tree, per process, per phase."""

    root: int
    phase: str = "before"
    # phase -> pid -> list of RSS samples (bytes)
    samples: dict[str, dict[int, list[int]]] = field(default_factory=dict)
    roles: dict[int, str] = field(default_factory=dict)
    stop_event: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        try:
            root = psutil.Process(self.root)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        by_pid = self.samples.setdefault(self.phase, {})
        for proc in procs:
            try:
                rss = int(proc.memory_info().rss)
                cmdline = " ".join(proc.cmdline())
            except psutil.Error:
                continue
            if proc.pid == self.root:
                role = "supervisor"
            elif "resource_tracker" in cmdline:
                role = "res-tracker"
            elif "multiprocessing" in cmdline and "spawn" in cmdline:
                role = "worker"
            else:
                role = proc.name()
            self.roles[proc.pid] = role
            by_pid.setdefault(proc.pid, []).append(rss)

    def run(self) -> None:
        while not self.stop_event.wait(SAMPLE_S):
            self.sample()

    def summary(self) -> list[dict[str, Any]]:
        rows = []
        for phase, by_pid in self.samples.items():
            for pid, values in sorted(by_pid.items()):
                rows.append(
                    {
                        "phase": phase,
                        "pid": pid,
                        "role": self.roles.get(pid, "?"),
                        "samples": len(values),
                        "rss_min_mib": round(min(values) / MIB, 1),
                        "rss_mean_mib": round(sum(values) / len(values) / MIB, 1),
                        "rss_max_mib": round(max(values) / MIB, 1),
                    }
                )
        return rows


async def prepare(server_dsn: str) -> str:
    dsn = await recreate(server_dsn, DATABASE)
    conn = await asyncpg.connect(dsn)
    try:
        await migrations.migrate(conn)
    finally:
        await conn.close()
    return dsn


def start_server(dsn: str, data_dir: Path, log_path: Path, workers: int) -> tuple[Any, str]:
    port = _server.free_port()
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "COALITION_DATA_DIR": str(data_dir),
        "COALITION_WORKERS": "1",
        "COALITION_HOST": "127.0.0.1",
        "COALITION_LOG_LEVEL": "WARNING",
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return process, f"http://127.0.0.1:{port}"


def run_bench(base_url: str, dsn: str, data_dir: Path, args: argparse.Namespace) -> tuple[int, str]:
    argv = [
        "--target",
        base_url,
        "--skip-pgbench",
        "--duration-s",
        str(args.duration_s),
        "--connections",
        str(args.connections),
    ]
    for name in args.scenario or ["earn-spread", "checkout-mixed"]:
        argv += ["--scenario", name]
    code = f"from gateway.bench import main; raise SystemExit(main({argv!r}))"
    env = {**os.environ, "DATABASE_URL": dsn, "COALITION_DATA_DIR": str(data_dir)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=BENCH_TIMEOUT_S,
        cwd=Path(__file__).resolve().parents[2],
    )
    return done.returncode, done.stdout + done.stderr


def measure(server_dsn: str, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    dsn = asyncio.run(prepare(server_dsn))
    data_dir = scratch / "server"
    data_dir.mkdir()
    log_path = scratch / "server.log"
    process, base_url = start_server(dsn, data_dir, log_path, args.workers)
    sampler = Sampler(process.pid)
    thread = threading.Thread(target=sampler.run, daemon=True)
    try:
        wrapped = _server.ServerProcess(process, base_url, log_path)
        asyncio.run(_server.wait_ready(base_url, wrapped))
        thread.start()
        time.sleep(IDLE_S)
        sampler.phase = "during"
        started = time.monotonic()
        code, output = run_bench(base_url, dsn, data_dir, args)
        bench_s = time.monotonic() - started
        sampler.phase = "after"
        time.sleep(IDLE_S)
    finally:
        sampler.stop_event.set()
        if thread.is_alive():
            thread.join()
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
    return {
        "workers": args.workers,
        "bench_exit": code,
        "bench_s": round(bench_s, 1),
        "bench_output": output.strip().splitlines()[-12:],
        "processes": sampler.summary(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration-s", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--scenario", action="append")
    args = parser.parse_args()
    if not 1 <= args.workers <= 8 or not 1 <= args.duration_s <= 60:
        parser.error("--workers 1..8, --duration-s 1..60")
    configured = os.environ.get("DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="server-memory-") as scratch_dir:
        scratch = Path(scratch_dir)
        if configured:
            result = measure(configured, args, scratch)
        else:
            cluster = embedded.start(scratch / "pg", cleanup_mode="delete")
            try:
                result = measure(cluster.dsn, args, scratch)
            finally:
                cluster.stop()
    print(f"coalition serve --workers {args.workers}; bench exit {result['bench_exit']}")
    for line in result["bench_output"]:
        print(f"  | {line}")
    print(f"{'phase':<8}{'pid':>8}  {'role':<12}{'min MiB':>9}{'mean MiB':>10}{'max MiB':>9}")
    for row in result["processes"]:
        print(
            f"{row['phase']:<8}{row['pid']:>8}  {row['role']:<12}{row['rss_min_mib']:>9}"
            f"{row['rss_mean_mib']:>10}{row['rss_max_mib']:>9}"
        )
    print("SERVER-MEMORY " + json.dumps(result), flush=True)
    return 0 if result["bench_exit"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
