"""Drill: SIGTERM while group commits are in flight.

Every call gets an answer or a closed connection (none hangs); the server shuts down
completely; nothing is applied without its answer stored for replay: after a restart, a retry
with the same key of a call that got no answer replays what was applied, and the exactly-once
audit is clean.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from tests.faults import network
from tests.faults.harness import Server, verify
from tests.faults.load import Load, audit

LOAD_WORKERS = 32  # enough concurrent calls for the lanes to commit groups of them
OPS_MAX = 4_000
SHOPPERS = 24
LOAD_S = 1.5


async def test_sigterm_during_group_commits_answers_or_closes_and_records_every_answer(
    drill_database: str, tmp_path: Path
) -> None:
    server = Server(drill_database, tmp_path, tmp_path / "server.log")
    await server.start()
    net = await network.build(server.url, tmp_path, slug="graceful", shoppers=SHOPPERS)
    load = Load(net.caller(server.url), net.cards, seed=11)
    try:
        stop = asyncio.Event()
        running = asyncio.create_task(load.run(stop, workers=LOAD_WORKERS, ops_max=OPS_MAX))
        await asyncio.sleep(LOAD_S)
        exit_status = await server.terminate()  # the load keeps calling while it stops
        stop.set()
        await running
        # uvicorn re-raises the signal once it has shut down: "killed by SIGTERM" after a
        # complete shutdown (drained lanes, pool closed) is its normal exit.
        assert exit_status in (0, -signal.SIGTERM), server.log_tail()
        assert "Application shutdown complete." in server.log_tail(5)
        assert load.observed.timeouts == 0, "a call hung during the stop"
        cut_off = load.unsettled()
        await server.start()
        await load.settle()
        found = await audit(drill_database, net.partner.partner_id, load)
        assert found.clean, found
        checked = verify(drill_database, tmp_path)
        assert checked.returncode == 0, (checked.stdout, checked.stderr)
    finally:
        await load.caller.aclose()
        await server.stop()
    assert found.acknowledged > LOAD_WORKERS, found.summary()
    replayed = sum(1 for op in cut_off if op.replayed)
    print(
        f"SIGTERM under load: {found.summary()}; calls cut off {len(cut_off)}, "
        f"of which applied before the stop and replayed on retry {replayed}"
    )
