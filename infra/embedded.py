"""The embedded PostgreSQL (pgserver) used when DATABASE_URL is unset."""

from __future__ import annotations

import logging
import os
import signal
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# pgserver asks platformdirs for a runtime dir at import; without XDG_RUNTIME_DIR that warns
# on every start although the fallback in /tmp is fine.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
from pgserver import postgres_server  # noqa: E402

log = logging.getLogger(__name__)
# pgserver logs every pg_ctl call with its full output at INFO; keep only its warnings.
logging.getLogger("pgserver").setLevel(logging.WARNING)


# Settings the embedded cluster runs with (ALTER SYSTEM: kept in its data directory).
# wal_init_zero: a fresh cluster has no WAL segments to recycle yet, so under write load it
# creates a 16 MB segment every second or so; zero-filling each one stalled every committing
# backend for 50-80 ms (the periodic p99 spikes of `coalition bench`). Off, PostgreSQL writes
# only the segment's last byte; WAL records carry their own CRCs, so recovery is unchanged.
SETTINGS: dict[str, str] = {"wal_init_zero": "off"}


class EmbeddedUnavailable(Exception):
    """The embedded PostgreSQL could not start; the message says why."""


@dataclass
class EmbeddedPostgres:
    """A running embedded cluster; `stop()` shuts it down cleanly."""

    pgdata: Path
    server: Any

    @property
    def dsn(self) -> str:
        return str(self.server.get_uri())

    def stop(self) -> None:
        """Stop the cluster unless another live process still uses it.

        A second Ctrl-C while it stops is ignored (by pg_ctl too, which inherits that), so
        an impatient user never leaves the cluster half stopped and running.
        """
        _forget_gone_handles(self.server)
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main_thread else None
        try:
            self.server.cleanup()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)


def _forget_gone_handles(server: Any) -> None:
    """Drop the processes that died without stopping the cluster from pgserver's handle list.

    pgserver stops the cluster only when the process stopping it is the last one listed in
    `<pgdata>/.handle_pids.json`. A process killed without its cleanup (kill -9, a crash, a
    closed terminal) stayed listed forever, so from then on no Ctrl-C of `coalition serve`
    ever stopped the embedded PostgreSQL again.
    """
    with server._lock:  # the inter-process lock pgserver itself takes around that list
        handles = server.global_process_id_list
        alive = [pid for pid in handles.get() if pid == os.getpid() or _alive(pid)]
        handles.put(alive)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def check_data_dir(data_dir: Path) -> None:
    """Raise EmbeddedUnavailable unless `data_dir` is (or can become) a writable folder."""
    data_dir = data_dir.expanduser().resolve()
    probe = data_dir
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise EmbeddedUnavailable(f"data directory {data_dir} is not a directory")
    if not os.access(probe, os.R_OK | os.W_OK | os.X_OK):
        raise EmbeddedUnavailable(f"data directory {probe} is not readable and writable")


def start(data_dir: Path, *, cleanup_mode: str = "stop") -> EmbeddedPostgres:
    """Start (or reuse) the cluster under `data_dir/pgdata`."""
    check_data_dir(data_dir)
    pgdata = data_dir.expanduser().resolve() / "pgdata"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = postgres_server.get_server(pgdata, cleanup_mode=cleanup_mode)
    except Exception as exc:  # pgserver raises bare exceptions with the pg_ctl log
        raise EmbeddedUnavailable(
            f"embedded PostgreSQL in {pgdata} failed to start: {exc}"
        ) from exc
    _apply(server, SETTINGS)
    log.info("embedded postgres ready", extra={"pgdata": str(pgdata)})
    return EmbeddedPostgres(pgdata=pgdata, server=server)


def _apply(server: Any, settings: dict[str, str]) -> None:
    """Each setting through ALTER SYSTEM, then one reload (all of them take effect on it)."""
    for name, value in settings.items():
        assert name.isidentifier(), name  # both are ours, never input: no quoting needed
        assert value.isalnum(), value
        server.psql(f"ALTER SYSTEM SET {name} = '{value}';")
    server.psql("SELECT pg_reload_conf();")


# The PostgreSQL binaries of the embedded server (its pg_dump and pg_restore match its version).
BIN_DIR = Path(postgres_server.__file__).parent / "pginstall" / "bin"
