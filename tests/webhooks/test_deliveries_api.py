"""Deliveries over the signed partner API: listing with attempts, retry, replay.

Events come from real purchases, refunds and redemptions through the API. The fan-out and the
delivery worker are not part of this API: where a test needs a message or an attempt to exist
it writes the row as they would (webhooks.message, webhooks.attempt)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from contracts.partners import PurchaseRequest, RedemptionRequest, RefundRequest
from contracts.webhooks import REPLAY_EVENTS_MAX
from gateway.tokens import SigningKey
from partners.webhooks import secrets
from tests.support.partner_network import Onboarded, onboard
from tests.webhooks.conftest import Api

BASE = "/v1/webhook-endpoints"


@pytest.fixture(scope="module")
async def partner(http: httpx.AsyncClient, signing_key: SigningKey) -> Onboarded:
    return await onboard(http, signing_key, "hooks-deliv")


@pytest.fixture(scope="module")
async def shop(http: httpx.AsyncClient, base_url: str, partner: Onboarded) -> Api:
    return Api(http, base_url, partner)


@pytest.fixture(scope="module")
async def card(base_url: str, partner: Onboarded) -> str:
    async with partner.client(base_url) as client:
        return (await client.enroll()).card_number


async def buy(base_url: str, partner: Onboarded, card: str, ref: str) -> None:
    async with partner.client(base_url) as client:
        await client.purchase(
            PurchaseRequest(partner_ref=ref, card_number=card, amount_minor=5_000, currency="EUR")
        )


async def event_of(db: asyncpg.Connection, partner_id: int, ref: str) -> int:
    event_id: int = await db.fetchval(
        "SELECT event_id FROM event_outbox WHERE partner_id = $1 AND payload->>'partner_ref' = $2",
        partner_id,
        ref,
    )
    assert event_id is not None, ref
    return event_id


async def endpoint_id(db: asyncpg.Connection, public_id: str) -> int:
    found: int = await db.fetchval(
        "SELECT endpoint_id FROM webhooks.endpoint WHERE public_id = $1", public_id
    )
    return found


async def message(
    db: asyncpg.Connection,
    endpoint_public_id: str,
    event_id: int,
    *,
    state: str = "pending",
    attempts: tuple[tuple[int | None, str | None], ...] = (),
) -> str:
    """A message as the fan-out writes it, with attempts as the delivery worker records them."""
    public_id = secrets.new_public_id("msg_")
    message_id = await db.fetchval(
        """INSERT INTO webhooks.message (public_id, endpoint_id, event_id, state, attempts_made,
               delivered_at)
           VALUES ($1, $2, $3, $4, $5, CASE WHEN $4 = 'delivered' THEN now() END)
           RETURNING message_id""",
        public_id,
        await endpoint_id(db, endpoint_public_id),
        event_id,
        state,
        len(attempts),
    )
    for status, error in attempts:
        await db.execute(
            """INSERT INTO webhooks.attempt (message_id, trigger, response_status, latency_ms,
                   error) VALUES ($1, 'scheduled', $2, 17, $3)""",
            message_id,
            status,
            error,
        )
    return public_id


async def test_deliveries_list_newest_first_with_their_attempts(
    shop: Api, base_url: str, partner: Onboarded, card: str, db: asyncpg.Connection
) -> None:
    endpoint = await shop.create(events=["purchase.created"])
    other = await shop.create(events=["purchase.created"])
    for n in range(3):
        await buy(base_url, partner, card, f"list-{n}")
    events = [await event_of(db, partner.partner_id, f"list-{n}") for n in range(3)]
    failed = await message(
        db, endpoint["id"], events[0], state="failed", attempts=((500, None), (None, "timeout"))
    )
    delivered = await message(
        db, endpoint["id"], events[1], state="delivered", attempts=((204, None),)
    )
    pending = await message(db, endpoint["id"], events[2])
    elsewhere = await message(db, other["id"], events[0])

    path = f"{BASE}/{endpoint['id']}/deliveries"
    listed = await shop.call("GET", path)
    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [item["id"] for item in items] == [pending, delivered, failed]
    assert listed.json()["next_cursor"] is None
    first = items[2]
    assert first["endpoint_id"] == endpoint["id"]
    assert first["event_id"] == events[0]
    assert first["event_type"] == "purchase.created"  # the public name of purchase.recorded
    assert first["state"] == "failed"
    assert first["attempts_made"] == 2
    assert first["next_attempt_at"] is None
    assert [(a["response_status"], a["error"]) for a in first["attempts"]] == [
        (None, "timeout"),
        (500, None),
    ]
    assert all(a["trigger"] == "scheduled" and a["latency_ms"] == 17 for a in first["attempts"])
    assert items[1]["delivered_at"] is not None
    assert items[0]["next_attempt_at"] is not None
    assert items[0]["attempts"] == []

    only_failed = await shop.call("GET", path + "?state=failed")
    assert [item["id"] for item in only_failed.json()["items"]] == [failed]
    bad_state = await shop.call("GET", path + "?state=lost")
    assert bad_state.status_code == 400

    pages: list[list[str]] = []
    cursor = None
    while True:
        page = await shop.call("GET", path + "?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        pages.append([item["id"] for item in page.json()["items"]])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert pages == [[pending, delivered], [failed]]

    one = await shop.call("GET", f"{path}/{failed}")
    assert one.status_code == 200
    assert one.json() == first
    # a message of another endpoint, even the partner's own, is not found under this one
    crossed = await shop.call("GET", f"{path}/{elsewhere}")
    assert crossed.status_code == 404
    assert (await shop.call("GET", f"{path}/msg_nope")).status_code == 404


async def test_a_retry_makes_the_message_due_now_as_manual(
    shop: Api, base_url: str, partner: Onboarded, card: str, db: asyncpg.Connection
) -> None:
    endpoint = await shop.create(events=["purchase.created"])
    await buy(base_url, partner, card, "retry-1")
    msg = await message(
        db, endpoint["id"], await event_of(db, partner.partner_id, "retry-1"), state="failed"
    )
    await db.execute(
        "UPDATE webhooks.message SET next_attempt_at = now() + interval '3 hours' "
        "WHERE public_id = $1",
        msg,
    )
    path = f"{BASE}/{endpoint['id']}/deliveries/{msg}/retry"
    retried = await shop.call("POST", path, idempotency_key="retry-key")
    assert retried.status_code == 202, retried.text
    assert retried.json()["state"] == "pending"
    assert retried.json()["next_trigger"] == "manual"
    row = await db.fetchrow(
        "SELECT state, next_trigger, lease_until, next_attempt_at <= now() AS due, attempts_made "
        "FROM webhooks.message WHERE public_id = $1",
        msg,
    )
    assert row is not None
    assert dict(row) == {
        "state": "pending",
        "next_trigger": "manual",
        "lease_until": None,
        "due": True,
        "attempts_made": 0,
    }
    again = await shop.call("POST", path, idempotency_key="retry-key")
    assert again.status_code == 202
    assert again.headers["idempotency-replayed"] == "true"


async def test_a_message_being_sent_is_not_retried_until_its_lease_ends(
    shop: Api, base_url: str, partner: Onboarded, card: str, db: asyncpg.Connection
) -> None:
    endpoint = await shop.create(events=["purchase.created"])
    await buy(base_url, partner, card, "lease-1")
    msg = await message(db, endpoint["id"], await event_of(db, partner.partner_id, "lease-1"))
    await db.execute(
        "UPDATE webhooks.message SET state = 'sending', lease_until = now() + interval '1 minute'"
        " WHERE public_id = $1",
        msg,
    )
    path = f"{BASE}/{endpoint['id']}/deliveries/{msg}/retry"
    refused = await shop.call("POST", path)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "webhook_delivery_sending"
    state = await db.fetchval("SELECT state FROM webhooks.message WHERE public_id = $1", msg)
    assert state == "sending"
    # a worker that died mid-send leaves an expired lease: the message may be retried
    await db.execute(
        "UPDATE webhooks.message SET lease_until = now() - interval '1 second' "
        "WHERE public_id = $1",
        msg,
    )
    retried = await shop.call("POST", path)
    assert retried.status_code == 202, retried.text
    assert retried.json()["state"] == "pending"


async def test_a_disabled_endpoint_is_neither_retried_nor_replayed(
    shop: Api, base_url: str, partner: Onboarded, card: str, db: asyncpg.Connection
) -> None:
    endpoint = await shop.create(events=["purchase.created"])
    await buy(base_url, partner, card, "off-1")
    msg = await message(
        db, endpoint["id"], await event_of(db, partner.partner_id, "off-1"), state="failed"
    )
    off = await shop.call("PATCH", f"{BASE}/{endpoint['id']}", {"enabled": False})
    assert off.status_code == 200
    retry = await shop.call("POST", f"{BASE}/{endpoint['id']}/deliveries/{msg}/retry")
    assert retry.status_code == 409
    assert retry.json()["code"] == "webhook_endpoint_disabled"
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    replay = await shop.call("POST", f"{BASE}/{endpoint['id']}/replay", {"since": since})
    assert replay.status_code == 409
    assert replay.json()["code"] == "webhook_endpoint_disabled"
    state = await db.fetchval("SELECT state FROM webhooks.message WHERE public_id = $1", msg)
    assert state == "failed"


async def test_replay_queues_the_endpoints_events_since_a_time(
    http: httpx.AsyncClient,
    signing_key: SigningKey,
    base_url: str,
    db: asyncpg.Connection,
) -> None:
    partner = await onboard(http, signing_key, "hooks-replay")
    other = await onboard(http, signing_key, "hooks-replay-other")
    shop = Api(http, base_url, partner)
    endpoint = await shop.create(events=["purchase.created", "purchase.refunded"])
    unsubscribed = await shop.create(events=["hold.voided"])
    async with partner.client(base_url) as client:
        card = (await client.enroll()).card_number
    await buy(base_url, partner, card, "early")
    async with other.client(base_url) as client:
        other_card = (await client.enroll()).card_number
    await buy(base_url, other, other_card, "theirs")  # another partner's purchase
    cut = await db.fetchval("SELECT now()")
    for ref in ("r-1", "r-2"):
        await buy(base_url, partner, card, ref)
    async with partner.client(base_url) as client:
        await client.refund(RefundRequest(partner_ref="r-back", original_partner_ref="r-1"))
        await client.redeem(  # redemption.created: not subscribed
            RedemptionRequest(partner_ref="r-burn", card_number=card, points=1)
        )
    wanted = {
        await event_of(db, partner.partner_id, "r-1"),
        await event_of(db, partner.partner_id, "r-2"),
        await event_of(db, partner.partner_id, "r-back"),
    }
    # the delivered message of r-1 is put back, with its id; the others are made
    delivered = await message(
        db,
        endpoint["id"],
        await event_of(db, partner.partner_id, "r-1"),
        state="delivered",
        attempts=((200, None),),
    )

    answer = await shop.call("POST", f"{BASE}/{endpoint['id']}/replay", {"since": cut.isoformat()})
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"endpoint_id": endpoint["id"], "queued": 3, "next_since": None}
    rows = await db.fetch(
        """SELECT m.public_id, m.event_id, m.state, m.next_trigger, m.lease_until,
                  m.next_attempt_at <= now() AS due
           FROM webhooks.message m JOIN webhooks.endpoint e USING (endpoint_id)
           WHERE e.public_id = $1""",
        endpoint["id"],
    )
    assert {r["event_id"] for r in rows} == wanted
    assert all(r["state"] == "pending" and r["next_trigger"] == "replay" for r in rows)
    assert all(r["due"] and r["lease_until"] is None for r in rows)
    assert delivered in {r["public_id"] for r in rows}
    listed = await shop.call("GET", f"{BASE}/{endpoint['id']}/deliveries")
    assert {item["event_type"] for item in listed.json()["items"]} == {
        "purchase.created",
        "purchase.refunded",
    }

    # the earlier purchase comes back with an earlier `since`; a replay again is idempotent
    earlier = (cut - timedelta(minutes=5)).isoformat()
    wider = await shop.call("POST", f"{BASE}/{endpoint['id']}/replay", {"since": earlier})
    assert wider.json()["queued"] == 4
    count = await db.fetchval(
        "SELECT count(*) FROM webhooks.message WHERE endpoint_id = $1",
        await endpoint_id(db, endpoint["id"]),
    )
    assert count == 4
    none = await shop.call("POST", f"{BASE}/{unsubscribed['id']}/replay", {"since": earlier})
    assert none.json()["queued"] == 0


@pytest.mark.parametrize(
    ("since", "status", "code"),
    [
        (lambda now: (now + timedelta(minutes=5)).isoformat(), 422, "webhook_replay_since_invalid"),
        (lambda now: (now - timedelta(days=31)).isoformat(), 422, "webhook_replay_since_invalid"),
        (lambda now: now.replace(tzinfo=None).isoformat(), 400, "validation_failed"),
        (lambda now: "yesterday", 400, "validation_failed"),
    ],
    ids=["future", "older-than-30-days", "no-offset", "not-a-time"],
)
async def test_replay_refuses_a_since_out_of_bounds(
    shop: Api, db: asyncpg.Connection, since: object, status: int, code: str
) -> None:
    endpoint = await shop.create(events=["purchase.created"])
    before = await db.fetchval("SELECT count(*) FROM webhooks.message")
    value = since(datetime.now(UTC))  # type: ignore[operator]
    answer = await shop.call("POST", f"{BASE}/{endpoint['id']}/replay", {"since": value})
    assert answer.status_code == status, answer.text
    assert answer.json()["code"] == code
    assert await db.fetchval("SELECT count(*) FROM webhooks.message") == before


async def test_a_replay_queues_at_most_its_bound_and_says_where_to_go_on(
    http: httpx.AsyncClient, signing_key: SigningKey, base_url: str, db: asyncpg.Connection
) -> None:
    partner = await onboard(http, signing_key, "hooks-bulk")
    shop = Api(http, base_url, partner)
    endpoint = await shop.create(events=["purchase.created"])
    extra = 7
    # as many purchase events as a bound and a few, one per millisecond over the last minutes
    await db.execute(
        """INSERT INTO event_outbox (event_type, partner_id, payload, occurred_at)
           SELECT 'purchase.recorded', $1, jsonb_build_object('n', n),
                  now() - interval '20 minutes' + n * interval '1 millisecond'
           FROM generate_series(1, $2::int) AS n""",
        partner.partner_id,
        REPLAY_EVENTS_MAX + extra,
    )
    since = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    first = await shop.call("POST", f"{BASE}/{endpoint['id']}/replay", {"since": since})
    assert first.status_code == 202, first.text
    assert first.json()["queued"] == REPLAY_EVENTS_MAX
    next_since = first.json()["next_since"]
    assert next_since is not None
    last_queued = await db.fetchval(
        """SELECT max(o.occurred_at) FROM webhooks.message m
           JOIN event_outbox o USING (event_id) WHERE m.endpoint_id = $1""",
        await endpoint_id(db, endpoint["id"]),
    )
    assert datetime.fromisoformat(next_since) > last_queued
    rest = await shop.call("POST", f"{BASE}/{endpoint['id']}/replay", {"since": next_since})
    assert rest.json() == {"endpoint_id": endpoint["id"], "queued": extra, "next_since": None}
    count = await db.fetchval(
        "SELECT count(*) FROM webhooks.message WHERE endpoint_id = $1",
        await endpoint_id(db, endpoint["id"]),
    )
    assert count == REPLAY_EVENTS_MAX + extra
