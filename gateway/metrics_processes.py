"""Prometheus multiprocess mode for `coalition serve --workers N` (N > 1).

Each uvicorn worker is its own process with its own counters, and a scrape reaches one of
them. With N > 1, `serve` gives the workers a fresh private directory (PROMETHEUS_MULTIPROC_DIR,
set before uvicorn spawns them): prometheus_client then keeps every value in a per-process
file there, and `GET /metrics` (Litestar's PrometheusController) merges the files through a
MultiProcessCollector, so counters are summed across workers and gauges follow their
`multiprocess_mode`. With one worker nothing changes: the in-memory default registry, with
the process_* and python_* collectors that multiprocess mode cannot export.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import multiprocess

ENV = "PROMETHEUS_MULTIPROC_DIR"
LIVE_GAUGE_PREFIX = "gauge_live"  # prometheus_client's file names: gauge_livesum_<pid>.db


@contextlib.contextmanager
def shared_directory(workers: int) -> Iterator[Path | None]:
    """For `workers` > 1, a fresh directory named in ENV for the block (the workers inherit
    the environment), removed afterwards; None and the environment untouched otherwise."""
    assert workers >= 1, "at least one worker"
    if workers == 1:
        yield None
        return
    # A new directory per start: files a previous run left would add its counts to ours.
    directory = Path(tempfile.mkdtemp(prefix="coalition-metrics-"))
    previous = os.environ.get(ENV)
    os.environ[ENV] = str(directory)
    try:
        yield directory
    finally:
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous
        shutil.rmtree(directory, ignore_errors=True)


def enabled() -> bool:
    return bool(os.environ.get(ENV))


def worker_started() -> None:
    """Drop the live gauges of workers that died without stopping (kill -9, OOM): uvicorn
    starts a replacement, which would otherwise add its in-flight count to a dead one's."""
    if not enabled():
        return
    for pid in _pids_with_live_gauges(Path(os.environ[ENV])):
        if pid != os.getpid() and not _alive(pid):
            multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def worker_stopped() -> None:
    """A worker's live gauges (in-flight requests, its pool) leave the sums when it stops;
    its counters stay: they count what it served."""
    if enabled():
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def _pids_with_live_gauges(directory: Path) -> set[int]:
    pids = set()
    for path in directory.glob(f"{LIVE_GAUGE_PREFIX}*_*.db"):
        pid = path.stem.rsplit("_", 1)[1]
        if pid.isdigit():
            pids.add(int(pid))
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process now holds the number: not ours, but alive
    return True
