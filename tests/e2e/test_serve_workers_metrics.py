"""`coalition serve --workers 2` (real processes): `/metrics` counts what both workers served.

Without Prometheus multiprocess mode each worker keeps its own counters and a scrape shows
whichever worker answered it. Here both workers must serve requests (checked in each worker's
own file under PROMETHEUS_MULTIPROC_DIR, found in its environment), and one scrape must show
the total.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import httpx
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.faults.harness import Server

WORKERS = 2
POOL_MAX = 3
BURST = 16  # concurrent requests, each on a connection of its own
BURSTS_MAX = 60  # bounded: the kernel spreads accepts; stop once both workers served some
GAUGE_POLLS_MAX = 100
POLL_S = 0.1
COUNTED_PATH = "/healthz"


@pytest.fixture(scope="module")
async def server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Server]:
    work = Path(tmp_path_factory.mktemp("workers"))
    running = Server(
        database_url,
        work,
        work / "server.log",
        env_extra={"COALITION_DB_POOL_MAX": str(POOL_MAX)},
        serve_args=("--workers", str(WORKERS)),
    )
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


def worker_pids(server: Server) -> list[int]:
    """uvicorn's worker processes: the children of the `serve` process."""
    assert server.process is not None
    parent = server.process.pid
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        # The spawn start method's resource tracker is a child too; workers run spawn_main.
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and b"spawn_main" in cmdline:
            pids.append(int(entry.name))
    return sorted(pids)


def multiproc_dir(pid: int) -> Path:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    named = [v.split(b"=", 1)[1] for v in environ if v.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
    assert named, f"worker {pid} runs without PROMETHEUS_MULTIPROC_DIR: per-process metrics"
    return Path(named[0].decode())


def served_by(directory: Path, pid: int) -> float:
    """COUNTED_PATH requests counted in one worker's own counter file."""
    path = directory / f"counter_{pid}.db"
    if not path.exists():
        return 0.0
    merged = MultiProcessCollector.merge([str(path)], accumulate=True)  # type: ignore[no-untyped-call]
    return healthz_total(merged)


def healthz_total(families: Iterable[Metric]) -> float:
    return sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == "coalition_requests_total" and sample.labels["path"] == COUNTED_PATH
    )


def scraped(text: str, name: str) -> list[float]:
    return [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


async def _burst(base_url: str) -> int:
    # No keep-alive: every request opens a connection, which either worker may accept.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=10) as http:
        answers = await asyncio.gather(*(http.get(COUNTED_PATH) for _ in range(BURST)))
    assert all(answer.status_code == 200 for answer in answers)
    return len(answers)


async def test_metrics_sum_the_counters_of_both_workers(server: Server) -> None:
    pids = worker_pids(server)
    assert len(pids) == WORKERS, pids
    directory = multiproc_dir(pids[0])
    assert multiproc_dir(pids[1]) == directory
    sent = 0
    for _ in range(BURSTS_MAX):
        sent += await _burst(server.url)
        if all(served_by(directory, pid) > 0 for pid in pids):
            break
    per_worker = [served_by(directory, pid) for pid in pids]
    assert all(count > 0 for count in per_worker), f"one worker served all: {per_worker}"
    assert sum(per_worker) == sent

    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        text = (await http.get("/metrics")).text
    assert healthz_total(text_string_to_metric_families(text)) == sent  # not one worker's share


async def test_pool_gauges_add_up_and_sampled_gauges_are_not_multiplied(server: Server) -> None:
    # Each worker's pool counts once (livesum); a figure read from the database is the latest
    # sample, one value without a pid label (mostrecent), not one series per worker.
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        for _ in range(GAUGE_POLLS_MAX):
            text = (await http.get("/metrics")).text
            if scraped(text, "coalition_db_pool_max") == [WORKERS * POOL_MAX]:
                break
            await asyncio.sleep(POLL_S)
    assert scraped(text, "coalition_db_pool_max") == [WORKERS * POOL_MAX]
    assert len(scraped(text, "coalition_ledger_postings_written")) == 1
    assert len(scraped(text, "coalition_outbox_undelivered")) == 1
