"""Issue 16's end-to-end: a signed purchase through the real server reaches a local endpoint
that fails its first two tries, once, as one webhook-id, verified by `standardwebhooks`; after a
rotation deliveries verify with either secret. The server's own scheduler does the work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from standardwebhooks import Webhook

from contracts.partners import PurchaseRequest
from gateway.tokens import SigningKey, load_or_create
from tests.support.partner_network import onboard
from tests.support.server import running_server, server_settings
from tests.webhooks.endpoints import add_endpoint, network_box, rotate
from tests.webhooks.receiver import receiving
from tests.webhooks.support import state_of, wait_for


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("webhooks-e2e"))


@pytest.fixture(scope="module")
async def base_url(database_url: str, data_dir: Path) -> AsyncIterator[str]:
    settings = server_settings(
        database_url,
        data_dir,
        workers_enabled=True,
        webhooks_allow_loopback=True,  # COALITION_WEBHOOKS_ALLOW_LOOPBACK=1
        webhook_retry_schedule_s=(0, 1, 1),  # COALITION_WEBHOOK_RETRY_SCHEDULE_S=0,1,1
    )
    async with running_server(settings) as url:
        yield url


async def test_a_purchase_is_delivered_on_the_third_try_and_verifies_after_rotation(
    base_url: str, database_url: str, data_dir: Path
) -> None:
    signing_key: SigningKey = load_or_create(data_dir, None)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        shop = await onboard(http, signing_key, "hooked-shop")
    box = network_box(data_dir)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert pool is not None
    try:
        with receiving(lambda tries: 503 if tries <= 2 else 200) as receiver:
            async with pool.acquire() as conn:
                endpoint_id, old_secret = await add_endpoint(
                    conn, box, shop.partner_id, receiver.url
                )
            async with shop.client(base_url) as client:
                card = (await client.enroll()).card_number
                bought = await client.purchase(
                    PurchaseRequest(
                        partner_ref="hook-1", card_number=card, amount_minor=4_200, currency="EUR"
                    )
                )

            async def delivered() -> bool:
                return [m["state"] for m in await state_of(pool, endpoint_id)] == ["delivered"]

            await wait_for(delivered, what="the purchase delivered")
            assert len(receiver.requests) == 3
            (webhook_id,) = set(receiver.ids())
            (message,) = await state_of(pool, endpoint_id)
            assert webhook_id == message["public_id"]
            for request in receiver.requests:
                document = Webhook(old_secret).verify(request.body, request.headers)
                assert document["type"] == "purchase.created"
                assert document["data"]["transaction_id"] == bought.transaction_id

            async with pool.acquire() as conn:
                new_secret = await rotate(conn, box, endpoint_id)
            async with shop.client(base_url) as client:
                await client.purchase(
                    PurchaseRequest(
                        partner_ref="hook-2", card_number=card, amount_minor=100, currency="EUR"
                    )
                )

            async def both() -> bool:
                return [m["state"] for m in await state_of(pool, endpoint_id)] == ["delivered"] * 2

            await wait_for(both, what="the second purchase delivered")
        after = [r for r in receiver.requests if r.webhook_id != webhook_id]
        assert {r.webhook_id for r in after} != set()
        for request in after:
            for secret in (old_secret, new_secret):
                assert (
                    Webhook(secret).verify(request.body, request.headers)["type"]
                    == "purchase.created"
                )
    finally:
        await pool.close()
