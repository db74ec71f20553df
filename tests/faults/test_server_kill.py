"""Drill: kill -9 of `coalition serve` under load, KILLS times in one run.

After each restart every acknowledged operation exists exactly once, every unacknowledged one
retried with its own key ends exactly once, and `coalition verify` is green.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from tests.faults import network
from tests.faults.harness import Server, verify
from tests.faults.load import Load, audit

KILLS = 5
LOAD_WORKERS = 8
OPS_MAX = 6_000  # bounds the run whatever the machine's speed
SHOPPERS = 12
LOAD_S_MIN = 0.8  # each kill lands at a random moment of a short burst of load
LOAD_S_MAX = 2.0


async def test_kill_9_of_the_server_under_load_loses_and_doubles_nothing(
    drill_database: str, tmp_path: Path
) -> None:
    server = Server(drill_database, tmp_path, tmp_path / "server.log")
    await server.start()
    net = await network.build(server.url, tmp_path, slug="kill-server", shoppers=SHOPPERS)
    caller = net.caller(server.url)
    load = Load(caller, net.cards, seed=5)
    rng = random.Random(5)
    retried = 0
    try:
        for kill in range(1, KILLS + 1):
            stop = asyncio.Event()
            running = asyncio.create_task(load.run(stop, workers=LOAD_WORKERS, ops_max=OPS_MAX))
            await asyncio.sleep(rng.uniform(LOAD_S_MIN, LOAD_S_MAX))
            await server.kill()  # mid-stream: calls in flight lose their connection
            await asyncio.sleep(0.3)  # the load keeps calling a dead port for a moment
            stop.set()
            await running
            await server.start()
            retried += await load.settle()
            found = await audit(drill_database, net.partner.partner_id, load)
            assert found.clean, (kill, found)
            checked = verify(drill_database, tmp_path)
            assert checked.returncode == 0, (kill, checked.stdout, checked.stderr)
        assert found.acknowledged > KILLS * 10, found.summary()
        assert load.observed.transport_errors > 0, "no kill ever hit a call in flight"
        assert retried > 0
        assert not [e for e in load.observed.server_errors if e["status"] == 500]
        print(f"server kill -9 x{KILLS}: {found.summary()}; retried {retried}; verify green")
    finally:
        await caller.aclose()
        await server.stop()
    assert server.starts == KILLS + 1
