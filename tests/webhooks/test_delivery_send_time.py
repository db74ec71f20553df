"""At send time: the SSRF check runs again (a refused address is recorded, nothing is sent),
and a slow endpoint holds only its own slots while a fast one is served."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from partners.webhooks.worker import PER_ENDPOINT_MAX
from tests.support import program
from tests.webhooks.endpoints import add_endpoint, network_box
from tests.webhooks.receiver import receiving
from tests.webhooks.support import attempts, running, state_of, wait_for, worker_for

FAST_EVENTS = 12


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("webhooks-send"))


@pytest.mark.parametrize(
    ("url", "address_class"),
    [
        ("http://127.0.0.2:{port}/hook", "loopback"),
        ("http://10.0.0.1:{port}/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("http://169.254.1.1:{port}/hook", "link_local"),
        ("http://[::1]:{port}/hook", "loopback"),
    ],
)
async def test_an_address_refused_at_send_time_is_recorded_and_nothing_is_sent(
    pool: asyncpg.Pool, data_dir: Path, url: str, address_class: str
) -> None:
    partner_id = await program.partner(pool, f"ssrf-{address_class.replace('_', '-')}-{len(url)}")
    card = (await program.shopper(pool, partner_id)).card_number
    with receiving(host="127.0.0.2") as receiver:
        # Written directly: the URL passed registration once, and now resolves elsewhere.
        async with pool.acquire() as conn:
            endpoint_id, _ = await add_endpoint(
                conn, network_box(data_dir), partner_id, url.format(port=receiver.port)
            )
        await program.buy(pool, partner_id, card, 400)
        worker = worker_for(data_dir, schedule_s=(0, 3600))
        await worker.fan_out(pool)
        await worker.deliver(pool)
    (message,) = await state_of(pool, endpoint_id)
    (tried,) = await attempts(pool, message["message_id"])
    assert tried["response_status"] is None
    assert tried["error"].startswith("refused: ")
    assert f"{address_class} addresses" in tried["error"]
    assert receiver.requests == []
    assert message["state"] == "pending"  # retried on the schedule, refused again then


async def test_a_slow_endpoint_holds_its_own_slots_and_never_delays_a_fast_one(
    pool: asyncpg.Pool, data_dir: Path
) -> None:
    partner_id = await program.partner(pool, "fair-shop")
    card = (await program.shopper(pool, partner_id)).card_number
    box = network_box(data_dir)
    with receiving() as slow, receiving() as fast:
        slow.hold()  # answers nothing until released
        async with pool.acquire() as conn:
            slow_id, _ = await add_endpoint(conn, box, partner_id, slow.url)
            fast_id, _ = await add_endpoint(conn, box, partner_id, fast.url)
        for n in range(FAST_EVENTS):
            await program.buy(pool, partner_id, card, 100 + n)
        worker = worker_for(data_dir)
        async with running(worker, pool):

            async def fast_done() -> bool:
                return (
                    len(set(fast.ids())) == FAST_EVENTS and len(slow.requests) == PER_ENDPOINT_MAX
                )

            await wait_for(fast_done, what="every event at the fast endpoint")
            # Every fast event arrived while the slow endpoint answered none of its own.
            assert slow.held_max == PER_ENDPOINT_MAX
            assert len(slow.requests) == PER_ENDPOINT_MAX
            slow.release()

            async def all_delivered() -> bool:
                states = [m["state"] for m in await state_of(pool, slow_id)]
                return states == ["delivered"] * FAST_EVENTS

            await wait_for(all_delivered, what="the slow endpoint catches up")
    assert [m["state"] for m in await state_of(pool, fast_id)] == ["delivered"] * FAST_EVENTS
    assert slow.held_max == PER_ENDPOINT_MAX  # never more in flight to one endpoint
