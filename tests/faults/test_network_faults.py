"""Drill: a faulty network between server and database (tests/faults/proxy.py): latency on
every chunk, and connections reset mid-transaction, RESETS_MIN times or more under load.

No operation is applied twice, none half: the exactly-once audit (transactions, stored
answers, wallets against the answers) is clean and `coalition verify` is green.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from urllib.parse import urlsplit

from tests.faults import network
from tests.faults.harness import Cluster, Server, verify
from tests.faults.load import Load, audit
from tests.faults.proxy import Proxy

LOAD_WORKERS = 8
OPS_MAX = 6_000
SHOPPERS = 12
RESETS_MIN = 20
LOAD_S = 6.0
RESET_EVERY_S = (0.05, 0.25)


def through(proxy: Proxy, dsn: str) -> str:
    """The database of `dsn` over TCP through the proxy."""
    database = urlsplit(dsn).path
    return f"postgresql://postgres@127.0.0.1:{proxy.port}{database}"


async def test_latency_and_resets_mid_transaction_apply_nothing_twice_or_half(
    cluster: Cluster, drill_database: str, tmp_path: Path
) -> None:
    proxy = Proxy(cluster.socket_path)
    await proxy.start()
    server = Server(through(proxy, drill_database), tmp_path, tmp_path / "server.log")
    try:
        await server.start()
        net = await network.build(server.url, tmp_path, slug="flaky-net", shoppers=SHOPPERS)
        load = Load(net.caller(server.url), net.cards, seed=13)
        rng = random.Random(13)
        stop = asyncio.Event()
        running = asyncio.create_task(load.run(stop, workers=LOAD_WORKERS, ops_max=OPS_MAX))
        loop = asyncio.get_running_loop()
        until = loop.time() + LOAD_S
        while loop.time() < until or proxy.resets < RESETS_MIN:
            await asyncio.sleep(rng.uniform(*RESET_EVERY_S))
            proxy.reset_one()
        stop.set()
        await running
        await load.settle()
        found = await audit(drill_database, net.partner.partner_id, load)
        assert found.clean, found
        checked = verify(drill_database, tmp_path)
        assert checked.returncode == 0, (checked.stdout, checked.stderr)
        await load.caller.aclose()
    finally:
        await server.stop()
        await proxy.close()
    assert proxy.resets >= RESETS_MIN
    assert not [e for e in load.observed.server_errors if e["status"] == 500]
    print(
        f"network faults: {proxy.resets} connections reset, latency {proxy.latency_s}s a chunk; "
        f"{found.summary()}; verify green"
    )
