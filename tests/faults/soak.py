"""`make soak`: mixed signed traffic with random kills of the server (kill -9) and of
PostgreSQL (immediate stop), for SOAK_MINUTES (default 10), then the exactly-once audit and
`coalition verify`. Not a test (not collected by pytest, not in CI).

    make soak                 # 10 minutes
    SOAK_MINUTES=2 make soak  # shorter
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

from infra import migrations
from tests.faults import network
from tests.faults.harness import Cluster, Server, verify
from tests.faults.load import Load, audit

LOAD_WORKERS = 8
OPS_MAX = 2_000_000
BETWEEN_KILLS_S = (3.0, 12.0)
DOWN_S = (0.5, 3.0)


async def soak(minutes: float, work: Path) -> int:
    cluster = Cluster.create(work / "pg")
    conn = await asyncpg.connect(cluster.dsn)
    await migrations.migrate(conn)
    await conn.close()
    server = Server(cluster.dsn, work, work / "server.log")
    await server.start()
    net = await network.build(server.url, work, slug="soak", shoppers=50)
    load = Load(net.caller(server.url), net.cards, seed=int(time.time()))
    rng = random.Random()
    kills = {"server": 0, "postgres": 0}
    stop = asyncio.Event()
    running = asyncio.create_task(load.run(stop, workers=LOAD_WORKERS, ops_max=OPS_MAX))
    deadline = time.monotonic() + minutes * 60
    try:
        while time.monotonic() < deadline:
            await asyncio.sleep(rng.uniform(*BETWEEN_KILLS_S))
            if rng.random() < 0.5:
                await server.kill()
                await asyncio.sleep(rng.uniform(*DOWN_S))
                await server.start()
                kills["server"] += 1
            else:
                await asyncio.to_thread(cluster.stop_immediately)
                await asyncio.sleep(rng.uniform(*DOWN_S))
                await asyncio.to_thread(cluster.start_again)
                await server.wait_ready()
                kills["postgres"] += 1
            print(f"kills {kills}, operations sent {len(load.ops)}", flush=True)
        stop.set()
        await running
        try:
            settled = await load.settle()
            print(f"settled {settled} operations left unanswered by the kills", flush=True)
        except AssertionError:
            await _show_sessions(cluster.dsn)
            _show_log_tail(work / "server.log")
            raise
        deadlocks = await _deadlocks(cluster.dsn)
        found = await audit(cluster.dsn, net.partner.partner_id, load)
        checked = verify(cluster.dsn, work)
    finally:
        stop.set()
        await load.caller.aclose()
        await server.stop()
        cluster.close()
    errors_500 = sum(1 for e in load.observed.server_errors if e["status"] == 500)
    print(f"soak {minutes} min: kills {kills}")
    print(f"operations acknowledged {found.acknowledged}, refused {found.refused}")
    print(f"lost {len(found.lost)} (must be 0), doubled {len(found.doubled)} (must be 0)")
    print(f"phantom {len(found.phantom)}, unrecorded {len(found.unrecorded)}, ", end="")
    print(f"wallets off {len(found.wallets_off)}, 500 answers {errors_500}")
    print(f"deadlocks detected by PostgreSQL {deadlocks} (since its last restart)")
    print(f"verify: {'green' if checked.returncode == 0 else 'FAILED'} {checked.stdout.strip()}")
    return 0 if found.clean and checked.returncode == 0 and errors_500 == 0 else 1


SESSIONS = """
SELECT a.pid, a.state, a.wait_event_type, a.wait_event, now() - a.xact_start AS in_xact,
       left(a.query, 160) AS query, pg_blocking_pids(a.pid) AS blocked_by
FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.state <> 'idle'
"""
LOG_TAIL_LINES = 40


async def _show_sessions(dsn: str) -> None:
    """What the database was doing when a call never settled (a transaction left open?)."""
    conn = await asyncpg.connect(dsn)
    try:
        for row in await conn.fetch(SESSIONS):
            print(dict(row), flush=True)
    finally:
        await conn.close()


def _show_log_tail(path: Path) -> None:
    lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    print("\n".join(["-- server log, last lines --", *lines]), flush=True)


async def _deadlocks(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        found: int = await conn.fetchval(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        )
        return found
    finally:
        await conn.close()


def main() -> int:
    minutes = float(os.environ.get("SOAK_MINUTES", "10"))
    work = Path(tempfile.mkdtemp(prefix="coalition-soak-"))
    work.chmod(0o755)  # the cluster's own user traverses it
    code = 1
    try:
        code = asyncio.run(soak(minutes, work))
        return code
    finally:
        if code == 0:
            shutil.rmtree(work, ignore_errors=True)
        else:  # kept for the post-mortem: the server log and the cluster's own log
            print(f"kept {work}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
