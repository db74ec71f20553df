"""Failed deliveries made for real: a partner registers an endpoint through its signed API, buys
through the SDK, and the delivery worker sends each event to a receiver answering 500 with a
schedule of one try, so every message ends `failed` as it would in production.

The server must allow loopback URLs (COALITION_WEBHOOKS_ALLOW_LOOPBACK) for the registration."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from contracts.partners import PurchaseRequest
from gateway.tokens import SigningKey
from partners.webhooks import secrets
from tests.support.partner_network import Onboarded, onboard
from tests.webhooks.conftest import Api
from tests.webhooks.receiver import Receiver
from tests.webhooks.support import worker_for


@dataclass(frozen=True)
class Failed:
    partner: Onboarded
    endpoint: dict[str, Any]  # as the partner API answered its creation
    messages: list[str]  # the failed deliveries' ids, newest first


async def failed_deliveries(
    http: httpx.AsyncClient,
    base_url: str,
    signing_key: SigningKey,
    pool: asyncpg.Pool,
    data_dir: Path,
    receiver: Receiver,
    slug: str,
    purchases: int,
) -> Failed:
    """A new partner whose one endpoint (the receiver's URL) failed `purchases` deliveries."""
    partner = await onboard(http, signing_key, slug)
    endpoint = await Api(http, base_url, partner).create(url=receiver.url)
    async with partner.client(base_url) as client:
        card = (await client.enroll()).card_number
        for n in range(purchases):
            await client.purchase(
                PurchaseRequest(
                    partner_ref=f"{slug}-{n}", card_number=card, amount_minor=900, currency="EUR"
                )
            )
    worker = worker_for(data_dir, schedule_s=(0,))  # one try: the first 500 fails the message
    await worker.fan_out(pool)
    await worker.deliver(pool)
    rows = await pool.fetch(
        "SELECT m.public_id, m.state FROM webhooks.message m"
        " JOIN webhooks.endpoint e USING (endpoint_id) WHERE e.public_id = $1"
        " ORDER BY m.message_id DESC",
        endpoint["id"],
    )
    assert [r["state"] for r in rows] == ["failed"] * purchases
    return Failed(partner, endpoint, [r["public_id"] for r in rows])


async def message_state(pool: asyncpg.Pool, public_id: str) -> dict[str, Any]:
    """What a retry changes in the message row."""
    row = await pool.fetchrow(
        "SELECT state, next_trigger, next_attempt_at <= now() AS due, attempts_made"
        " FROM webhooks.message WHERE public_id = $1",
        public_id,
    )
    assert row is not None
    return dict(row)


PUBLIC_URL = "https://93.184.215.14/hooks"  # a literal public address: nothing is resolved


async def written_failure(
    http: httpx.AsyncClient, base_url: str, partner: Onboarded, pool: asyncpg.Pool
) -> tuple[str, str]:
    """For a server that may not reach a receiver: an endpoint registered through the partner
    API and its failed delivery of the partner's latest event, written as the delivery worker
    writes one that got a 500 (the message and its attempt). Answers (endpoint id, message id)."""
    endpoint = await Api(http, base_url, partner).create(url=PUBLIC_URL)
    message_id = secrets.new_public_id("msg_")
    async with pool.acquire() as conn, conn.transaction():
        row_id = await conn.fetchval(
            """INSERT INTO webhooks.message (public_id, endpoint_id, event_id, state, attempts_made)
               SELECT $1, e.endpoint_id, o.event_id, 'failed', 1
               FROM webhooks.endpoint e, LATERAL (
                   SELECT event_id FROM event_outbox WHERE partner_id = e.partner_id
                   ORDER BY event_id DESC LIMIT 1) o
               WHERE e.public_id = $2
               RETURNING message_id""",
            message_id,
            endpoint["id"],
        )
        assert row_id is not None, "the partner has an event"
        await conn.execute(
            "INSERT INTO webhooks.attempt (message_id, trigger, response_status, latency_ms)"
            " VALUES ($1, 'scheduled', 500, 41)",
            row_id,
        )
    return endpoint["id"], message_id
