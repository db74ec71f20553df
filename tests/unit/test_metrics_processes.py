"""The multiprocess directory of `serve --workers N` and its bookkeeping of dead workers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway import metrics_processes

NEVER_A_PID = 999_999_999  # above Linux's pid_max (at most 2**22)


def test_one_worker_keeps_the_in_memory_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(metrics_processes.ENV, raising=False)
    with metrics_processes.shared_directory(1) as directory:
        assert directory is None
        assert metrics_processes.ENV not in os.environ


def test_workers_get_a_fresh_directory_removed_afterwards(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(metrics_processes.ENV, raising=False)
    with metrics_processes.shared_directory(2) as directory:
        assert directory is not None
        assert os.environ[metrics_processes.ENV] == str(directory)
        assert list(directory.iterdir()) == []
        assert directory.stat().st_mode & 0o077 == 0  # private to the service's user
    assert not directory.exists()
    assert metrics_processes.ENV not in os.environ


def test_dead_workers_leave_the_live_gauges_but_keep_their_counts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(metrics_processes.ENV, str(tmp_path))
    mine = os.getpid()
    names = [
        f"gauge_livesum_{NEVER_A_PID}.db",
        f"counter_{NEVER_A_PID}.db",
        f"gauge_mostrecent_{NEVER_A_PID}.db",
        f"gauge_livesum_{mine}.db",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    metrics_processes.worker_started()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:])
    metrics_processes.worker_stopped()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:3])
