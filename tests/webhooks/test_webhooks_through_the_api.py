"""Issue 16's end-to-end, every step through the signed partner API as a partner would do it:
register an endpoint (the secret comes from the answer), a purchase is delivered on the third
try as one webhook-id verified by `standardwebhooks`; a replay resends it with the same id; after
rotate-secret, deliveries verify with either secret; the deliveries listing shows the tries."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from contracts.partners import PurchaseRequest
from gateway.tokens import load_or_create
from tests.support.partner_network import Onboarded, onboard, signed
from tests.support.server import running_server, server_settings
from tests.webhooks.receiver import receiving
from tests.webhooks.support import wait_for


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("webhooks-api-e2e"))


@pytest.fixture(scope="module")
async def base_url(database_url: str, data_dir: Path) -> AsyncIterator[str]:
    settings = server_settings(
        database_url,
        data_dir,
        workers_enabled=True,
        webhooks_allow_loopback=True,
        webhook_retry_schedule_s=(0, 1, 1),
    )
    async with running_server(settings) as url:
        yield url


async def call(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded, method: str, path: str,
    body: dict[str, Any] | None = None, key: str | None = None,
) -> httpx.Response:  # fmt: skip
    content = b"" if body is None else json.dumps(body).encode()
    headers = signed(shop, method, f"{base_url}{path}", content, idempotency_key=key)
    return await http.request(method, path, content=content, headers=headers)


async def test_register_deliver_replay_rotate_all_through_the_api(
    base_url: str, data_dir: Path
) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        shop = await onboard(http, load_or_create(data_dir, None), "api-hooked-shop")
        with receiving(lambda tries: 503 if tries <= 2 else 200) as receiver:
            created = await call(
                http, base_url, shop, "POST", "/v1/webhook-endpoints",
                {"url": receiver.url, "events": ["purchase.created"]}, key="ep-1",
            )  # fmt: skip
            assert created.status_code == 201, created.text
            endpoint = created.json()
            old_secret = endpoint["secret"]
            since = datetime.now(UTC) - timedelta(seconds=5)
            async with shop.client(base_url) as client:
                card = (await client.enroll()).card_number
                bought = await client.purchase(
                    PurchaseRequest(
                        partner_ref="api-hook-1", card_number=card, amount_minor=4_200,
                        currency="EUR",
                    )
                )  # fmt: skip
            deliveries = f"/v1/webhook-endpoints/{endpoint['id']}/deliveries"

            async def listed_states() -> list[str]:
                page = (await call(http, base_url, shop, "GET", deliveries)).json()
                return [item["state"] for item in page["items"]]

            async def delivered() -> bool:
                return await listed_states() == ["delivered"]

            await wait_for(delivered, what="the purchase delivered")
            assert len(receiver.requests) == 3
            (webhook_id,) = set(receiver.ids())
            for request in receiver.requests:
                document = Webhook(old_secret).verify(request.body, request.headers)
                assert document["type"] == "purchase.created"
                assert document["data"]["transaction_id"] == bought.transaction_id
            [item] = (await call(http, base_url, shop, "GET", deliveries)).json()["items"]
            statuses = sorted(a["response_status"] for a in item["attempts"])
            assert statuses == [200, 503, 503]

            replayed = await call(
                http, base_url, shop, "POST", f"/v1/webhook-endpoints/{endpoint['id']}/replay",
                {"since": since.isoformat()}, key="replay-1",
            )  # fmt: skip
            assert replayed.status_code == 202, replayed.text

            async def resent() -> bool:
                return len(receiver.requests) == 4 and await listed_states() == ["delivered"]

            await wait_for(resent, what="the replay delivered")
            assert receiver.requests[-1].webhook_id == webhook_id  # the same id, once more
            Webhook(old_secret).verify(receiver.requests[-1].body, receiver.requests[-1].headers)

            rotated = await call(
                http, base_url, shop, "POST",
                f"/v1/webhook-endpoints/{endpoint['id']}/rotate-secret", {}, key="rotate-1",
            )  # fmt: skip
            assert rotated.status_code == 200, rotated.text
            new_secret = rotated.json()["secret"]
            assert new_secret != old_secret
            async with shop.client(base_url) as client:
                await client.purchase(
                    PurchaseRequest(
                        partner_ref="api-hook-2", card_number=card, amount_minor=100,
                        currency="EUR",
                    )
                )  # fmt: skip

            async def second() -> bool:
                return await listed_states() == ["delivered", "delivered"]

            await wait_for(second, what="the purchase after the rotation delivered")
        after = [r for r in receiver.requests if r.webhook_id != webhook_id]
        assert after
        for request in after:
            for secret in (old_secret, new_secret):
                assert Webhook(secret).verify(request.body, request.headers)["type"] == (
                    "purchase.created"
                )
