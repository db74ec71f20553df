"""The fan-out: one message per (event, endpoint that wants it), the queue drained once."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from partners.webhooks import fanout
from tests.support import program
from tests.webhooks.endpoints import add_endpoint, network_box


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("webhooks-fanout"))


async def test_an_event_reaches_only_its_partners_subscribed_enabled_endpoints_once(
    pool: asyncpg.Pool, data_dir: Path
) -> None:
    shop = await program.partner(pool, "fan-shop")
    other = await program.partner(pool, "fan-other")
    card = (await program.shopper(pool, shop)).card_number
    box = network_box(data_dir)
    async with pool.acquire() as conn:
        wanted, _ = await add_endpoint(conn, box, shop, "http://127.0.0.1:9/a")
        await add_endpoint(conn, box, shop, "http://127.0.0.1:9/b", ["redemption.created"])
        off, _ = await add_endpoint(conn, box, shop, "http://127.0.0.1:9/c")
        await conn.execute(
            "UPDATE webhooks.endpoint SET enabled = false WHERE endpoint_id = $1", off
        )
        await add_endpoint(conn, box, other, "http://127.0.0.1:9/d")
    await program.buy(pool, shop, card, 1_000)
    await program.buy(pool, shop, card, 2_000)

    drained = await fanout.fan_out(pool, batch_max=1)  # batches: one event at a time
    drained += await fanout.fan_out(pool, batch_max=1)
    assert drained == 2
    assert await fanout.fan_out(pool) == 0
    assert await pool.fetchval("SELECT count(*) FROM webhooks.fanout_queue") == 0
    rows = await pool.fetch("SELECT endpoint_id, event_id FROM webhooks.message")
    assert [r["endpoint_id"] for r in rows] == [wanted, wanted]
    assert len({r["event_id"] for r in rows}) == 2

    # An event queued again (e.g. after a replay made its message) makes no second message.
    await pool.execute(
        "INSERT INTO webhooks.fanout_queue (event_id) VALUES ($1)", rows[0]["event_id"]
    )
    assert await fanout.fan_out(pool) == 1
    assert await pool.fetchval("SELECT count(*) FROM webhooks.message") == 2
