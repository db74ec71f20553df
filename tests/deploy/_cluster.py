"""A throwaway PostgreSQL primary and a streaming replica made with `pg_basebackup -R`,
on free 127.0.0.1 ports, with the Debian (or pgserver) binaries."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.server import free_port

BIN_DIRS = (
    Path("/usr/lib/postgresql/16/bin"),
    Path("/usr/lib/postgresql/15/bin"),
)
COMMAND_TIMEOUT_S = 120
# PostgreSQL refuses to run as root: as root, run it as pgserver's unprivileged user.
SYSTEM_USER = "pgserver"


def _as_owner() -> list[str]:
    return ["runuser", "-u", SYSTEM_USER, "--"] if os.geteuid() == 0 else []


def _own(root: Path) -> None:
    """Let the server's user own `root` and traverse to it."""
    if os.geteuid() != 0:
        return
    from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

    entry = ensure_user_exists(SYSTEM_USER)
    assert entry is not None
    ensure_prefix_permissions(root)
    os.chown(root, entry.pw_uid, entry.pw_gid)


def pg_bin(name: str) -> str:
    for directory in BIN_DIRS:
        if (directory / name).exists():
            return str(directory / name)
    import pgserver  # its bundled binaries, when Debian's are absent

    bundled = Path(pgserver.__file__).parent / "pginstall" / "bin" / name
    assert bundled.exists(), f"no PostgreSQL {name} found"
    return str(bundled)


def _run(*args: str) -> None:
    done = subprocess.run(
        [*_as_owner(), *args], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
    )
    assert done.returncode == 0, (args, done.stdout, done.stderr)


@dataclass(frozen=True)
class Node:
    data_dir: Path
    port: int

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir}"
        log = str(self.data_dir / "server.log")
        _run(pg_bin("pg_ctl"), "-D", str(self.data_dir), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        _run(pg_bin("pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop")


@contextmanager
def primary_and_replica(root: Path) -> Iterator[tuple[Node, Node]]:
    """Both running for the block; stopped and removed after it."""
    _own(root)
    primary = Node(root / "primary", free_port())
    replica = Node(root / "replica", free_port())
    _run(
        pg_bin("initdb"),
        "-D",
        str(primary.data_dir),
        "-U",
        "postgres",
        "--auth=trust",
        "-E",
        "UTF8",
    )
    primary.start()
    try:
        _run(
            pg_bin("pg_basebackup"),
            "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
            "-D", str(replica.data_dir), "-R", "-X", "stream", "-c", "fast",
        )  # fmt: skip
        replica.start()
        try:
            yield primary, replica
        finally:
            replica.stop()
    finally:
        primary.stop()
        shutil.rmtree(root, ignore_errors=True)
