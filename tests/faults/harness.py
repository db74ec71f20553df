"""The pieces the drills kill: `coalition serve` as a subprocess, a PostgreSQL cluster of the
drills' own, and `coalition verify`.

Everything listens on 127.0.0.1 or a Unix socket under a temporary directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pgserver

from infra import embedded
from tests.support.server import free_port

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
VERIFY_TIMEOUT_S = 120.0
POLL_S = 0.1


def _base_env(data_dir: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COALITION_")}
    env.update(
        {"DATABASE_URL": database_url, "COALITION_DATA_DIR": str(data_dir), **extra},
    )
    return env


@dataclass
class Server:
    """`coalition serve` on 127.0.0.1:`port` (the same port across restarts), its log (JSON
    lines) appended to `log_path`."""

    database_url: str
    data_dir: Path
    log_path: Path
    env_extra: dict[str, str] = field(default_factory=dict)
    serve_args: tuple[str, ...] = ()  # after `serve --port N`, e.g. ("--workers", "2")
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return _base_env(self.data_dir, self.database_url, **self.env_extra)

    async def start(self) -> None:
        await asyncio.to_thread(self._spawn)
        await self.wait_ready()

    def _spawn(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "gateway.cli", "serve", "--port", str(self.port)),
                    *self.serve_args,
                ],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.starts += 1

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        async with httpx.AsyncClient(base_url=self.url, timeout=2) as http:
            while time.monotonic() < deadline:
                assert self.process is not None
                assert self.process.poll() is None, self.log_tail()
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(POLL_S)
        raise AssertionError(f"the server did not become ready:\n{self.log_tail()}")

    async def kill(self) -> None:
        """kill -9: no shutdown of any kind."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.process.wait, STOP_TIMEOUT_S)

    async def terminate(self) -> int:
        """SIGTERM (graceful stop); the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.process.wait, STOP_TIMEOUT_S)

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            await self.terminate()

    def log_lines(self) -> list[dict[str, Any]]:
        """The log's JSON lines (anything else, e.g. the banner, is skipped)."""
        lines = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            if raw.startswith("{"):
                lines.append(json.loads(raw))
        return lines

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def verify(database_url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    """`coalition verify` as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "verify"],
        env=_base_env(data_dir, database_url),
        text=True,
        capture_output=True,
        timeout=VERIFY_TIMEOUT_S,
        check=False,
    )


@dataclass
class Cluster:
    """A PostgreSQL cluster of the drills' own (pgserver's binaries, Unix socket only), which
    the drills may stop abruptly and start again."""

    postgres: embedded.EmbeddedPostgres

    @classmethod
    def create(cls, directory: Path) -> Cluster:
        return cls(embedded.start(directory, cleanup_mode="delete"))

    @property
    def dsn(self) -> str:
        return self.postgres.dsn

    @property
    def socket_path(self) -> str:
        info = self.postgres.server.get_postmaster_info()
        return str(Path(info.socket_dir) / f".s.PGSQL.{info.port}")

    def stop_immediately(self) -> None:
        """`pg_ctl stop -m immediate`: every backend quits at once, no checkpoint; the next
        start runs crash recovery (what a kill -9 of the whole cluster leaves behind)."""
        pgserver.pg_ctl(  # type: ignore[attr-defined]
            ["-w", "-m", "immediate", "stop"],
            pgdata=self.postgres.pgdata,
            user=self.postgres.server.system_user,
        )

    def start_again(self) -> None:
        self.postgres.server.ensure_postgres_running()

    def ensure_running(self) -> None:
        """Start it unless it runs (pgserver checks postmaster.pid and the process)."""
        self.postgres.server.ensure_postgres_running()

    def close(self) -> None:
        self.postgres.stop()
