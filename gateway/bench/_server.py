"""The processes a bench run starts: a scratch database and `coalition serve` on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

READY_TIMEOUT_S = 60.0
READY_POLL_S = 0.2
STOP_TIMEOUT_S = 20.0
LOG_TAIL_CHARS = 3_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def with_database(dsn: str, database: str) -> str:
    """`dsn` pointing at another database on the same server (query, e.g. host=, kept)."""
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


async def recreate_database(server_dsn: str, database: str) -> str:
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    return with_database(server_dsn, database)


async def drop_database(server_dsn: str, database: str) -> None:
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await admin.close()


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except OSError:
            return "(no server log)"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)


def start_server(dsn: str, data_dir: Path, log_path: Path, *, workers: int = 1) -> ServerProcess:
    """`python -m gateway.cli serve` on a free loopback port, `workers` processes (uvicorn's
    --workers), the periodic jobs enabled."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "COALITION_DATA_DIR": str(data_dir),
        "COALITION_WORKERS": "1",
        "COALITION_HOST": "127.0.0.1",
        "COALITION_LOG_LEVEL": os.environ.get("COALITION_LOG_LEVEL", "WARNING"),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and module, fixed args)
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "serve",
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
    return ServerProcess(process, f"http://127.0.0.1:{port}", log_path)


async def wait_ready(base_url: str, server: ServerProcess | None) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient(base_url=base_url, timeout=5.0) as http:
        while time.monotonic() < deadline:
            if server is not None and server.process.poll() is not None:
                raise RuntimeError(f"the server exited early:\n{server.log_tail()}")
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(READY_POLL_S)
    tail = server.log_tail() if server is not None else ""
    raise RuntimeError(f"{base_url} was not ready within {READY_TIMEOUT_S:.0f} s\n{tail}")
