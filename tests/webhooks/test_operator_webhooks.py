"""The operator's view of a partner's webhooks over HTTP: its endpoints (never their secrets),
their deliveries, and a retry of a failed one, with the partner id taken from the path.

The deliveries are real (tests/webhooks/failing.py): sent by the delivery worker to a local
receiver that answers 500, then 204 once the partner "fixes" it."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import httpx
import pytest

from gateway.tokens import Role, SigningKey
from tests.support.partner_network import admin_headers
from tests.webhooks.conftest import Api
from tests.webhooks.failing import failed_deliveries, message_state
from tests.webhooks.receiver import receiving
from tests.webhooks.support import worker_for

BASE = "/v1/operator/partners/{partner_id}/webhook-endpoints"


@pytest.fixture(scope="module")
def allow_loopback() -> bool:
    return True  # the partner registers the local receiver's http://127.0.0.1 URL


async def test_operators_read_endpoints_and_failed_deliveries_and_support_retries_one(
    http: httpx.AsyncClient,
    base_url: str,
    signing_key: SigningKey,
    pool: asyncpg.Pool,
    data_dir: Path,
) -> None:
    with receiving(lambda _: 500) as receiver:
        shop = await failed_deliveries(
            http, base_url, signing_key, pool, data_dir, receiver, "op-hooks", purchases=2
        )
        other = await failed_deliveries(
            http, base_url, signing_key, pool, data_dir, receiver, "op-hooks-other", purchases=1
        )
        base = BASE.format(partner_id=shop.partner.partner_id)
        endpoint_id = shop.endpoint["id"]

        for role in Role:  # every operator role reads
            listed = await http.get(base, headers=admin_headers(signing_key, role))
            assert listed.status_code == 200, (role, listed.text)
            (item,) = listed.json()["items"]
            assert item["id"] == endpoint_id
            assert item["url"] == receiver.url
            assert "secret" not in item
            assert listed.json()["next_cursor"] is None

        deliveries = await http.get(
            f"{base}/{endpoint_id}/deliveries?state=failed",
            headers=admin_headers(signing_key, Role.AUDITOR),
        )
        assert deliveries.status_code == 200, deliveries.text
        items = deliveries.json()["items"]
        assert [d["id"] for d in items] == shop.messages  # newest first
        assert all(d["state"] == "failed" and d["attempts_made"] == 1 for d in items)
        assert [a["response_status"] for a in items[0]["attempts"]] == [500]
        paged = await http.get(
            f"{base}/{endpoint_id}/deliveries?limit=1", headers=admin_headers(signing_key)
        )
        assert [d["id"] for d in paged.json()["items"]] == shop.messages[:1]
        assert paged.json()["next_cursor"] is not None

        target = shop.messages[0]
        retry = f"{base}/{endpoint_id}/deliveries/{target}/retry"
        for refused_role in (Role.FINANCE, Role.AUDITOR):
            refused = await http.post(retry, headers=admin_headers(signing_key, refused_role))
            assert refused.status_code == 403
            assert refused.json()["code"] == "role_required"
        assert (await message_state(pool, target))["state"] == "failed"

        retried = await http.post(retry, headers=admin_headers(signing_key, Role.SUPPORT))
        assert retried.status_code == 202, retried.text
        assert retried.json()["id"] == target
        assert retried.json()["state"] == "pending"
        assert await message_state(pool, target) == {
            "state": "pending",
            "next_trigger": "manual",
            "due": True,
            "attempts_made": 1,
        }
        assert (await message_state(pool, shop.messages[1]))["state"] == "failed"  # only that one

        receiver.respond = lambda _: 204  # the partner fixed its endpoint
        await worker_for(data_dir, schedule_s=(0,)).deliver(pool)
        assert (await message_state(pool, target))["state"] == "delivered"
        assert receiver.ids().count(target) == 2  # the failed try, then the manual one

        # another partner's endpoint and delivery ids under this partner's path are not found
        crossed = [
            await http.get(
                f"{base}/{other.endpoint['id']}/deliveries", headers=admin_headers(signing_key)
            ),
            await http.post(
                f"{base}/{other.endpoint['id']}/deliveries/{other.messages[0]}/retry",
                headers=admin_headers(signing_key),
            ),
            await http.post(
                f"{base}/{endpoint_id}/deliveries/{other.messages[0]}/retry",
                headers=admin_headers(signing_key),
            ),
        ]
        assert [answer.status_code for answer in crossed] == [404, 404, 404]
        assert all(answer.json()["code"] == "not_found" for answer in crossed)
        assert (await message_state(pool, other.messages[0]))["state"] == "failed"

    unknown = await http.get(BASE.format(partner_id=999_999), headers=admin_headers(signing_key))
    assert unknown.status_code == 404
    bad_state = await http.get(
        f"{base}/{endpoint_id}/deliveries?state=lost", headers=admin_headers(signing_key)
    )
    assert bad_state.status_code == 400


async def test_a_disabled_endpoints_delivery_is_not_retried(
    http: httpx.AsyncClient,
    base_url: str,
    signing_key: SigningKey,
    pool: asyncpg.Pool,
    data_dir: Path,
) -> None:
    with receiving(lambda _: 500) as receiver:
        shop = await failed_deliveries(
            http, base_url, signing_key, pool, data_dir, receiver, "op-hooks-off", purchases=1
        )
    endpoint_id = shop.endpoint["id"]
    off = await Api(http, base_url, shop.partner).call(
        "PATCH", f"/v1/webhook-endpoints/{endpoint_id}", {"enabled": False}
    )
    assert off.status_code == 200, off.text
    base = BASE.format(partner_id=shop.partner.partner_id)
    refused = await http.post(
        f"{base}/{endpoint_id}/deliveries/{shop.messages[0]}/retry",
        headers=admin_headers(signing_key),
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "webhook_endpoint_disabled"
    assert (await message_state(pool, shop.messages[0]))["state"] == "failed"
