"""The public events issue 16 added, on real PostgreSQL: refunds, holds captured, voided and
expired, and the statement lifecycle each record exactly one event with the change, to the
right partner; the SQL rule naming public types agrees with contracts.events; an event's
endpoints are the enabled, subscribed endpoints of its recipients."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import jsonschema_rs
import pytest

from contracts import events as catalogue
from contracts.partners import (
    CaptureRequest,
    Enrollment,
    EnrollRequest,
    HoldRequest,
    PartnerCreate,
    PurchaseRequest,
    RedemptionRequest,
    RefundRequest,
)
from ledger import service as ledger
from ledger import settlement
from partners import operations
from partners.errors import RefundExceedsOriginal
from partners.webhooks.secrets import new_public_id

_n = itertools.count(1)


async def events_of(pool: asyncpg.Pool, event_type: str, partner_id: int) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT shopper_id, payload FROM event_outbox WHERE event_type = $1 AND partner_id = $2"
        " ORDER BY event_id",
        event_type,
        partner_id,
    )
    return [{"outbox_shopper_id": r["shopper_id"], **json.loads(r["payload"])} for r in rows]


async def new_partner(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn, conn.transaction():
        created = await operations.create_partner(
            conn,
            PartnerCreate(
                name="Shop",
                slug=f"public-events-{next(_n)}",
                issue_price_micros=10_000,
                redemption_price_micros=8_000,
                earn_points=1,
                earn_spend_minor=100,
            ),
            operator="test",
        )
    return created.id


async def shopper_with_points(pool: asyncpg.Pool, partner_id: int, amount_minor: int) -> Enrollment:
    async with pool.acquire() as conn, conn.transaction():
        holder = await operations.enroll_shopper(conn, partner_id, EnrollRequest())
        ref = f"buy-{next(_n)}"
        await operations.purchase(
            conn,
            partner_id,
            PurchaseRequest(
                partner_ref=ref,
                card_number=holder.card_number,
                amount_minor=amount_minor,
                currency="EUR",
            ),
            idempotency_key=ref,
        )
    return holder


async def test_the_sql_public_type_rule_agrees_with_the_catalogue(pool: asyncpg.Pool) -> None:
    internal = ["tier.changed", "referral.rewarded", "webhook_endpoint.disabled", "x.y"]
    names = [*catalogue.EVENT_TYPES, "purchase.recorded", "redemption.recorded", *internal]
    for name in names:
        assert await pool.fetchval("SELECT webhooks.public_type($1)", name) == (
            catalogue.public_type(name)
        ), name


async def test_a_refund_of_a_purchase_and_of_a_redemption_each_record_one_event(
    pool: asyncpg.Pool,
) -> None:
    shop = await new_partner(pool)
    holder = await shopper_with_points(pool, shop, 10_000)  # 100 points
    async with pool.acquire() as conn, conn.transaction():
        await operations.redeem(
            conn,
            shop,
            RedemptionRequest(partner_ref="use-1", card_number=holder.card_number, points=30),
            idempotency_key="use-1",
        )
        await operations.refund(
            conn,
            shop,
            RefundRequest(partner_ref="rf-use-1", original_partner_ref="use-1", points=10),
            idempotency_key="rf-use-1",
        )
    buy_ref = await pool.fetchval(
        "SELECT partner_ref FROM partner_transactions WHERE partner_id = $1 AND kind = 'purchase'",
        shop,
    )
    async with pool.acquire() as conn, conn.transaction():
        await operations.refund(
            conn,
            shop,
            RefundRequest(partner_ref="rf-buy-1", original_partner_ref=buy_ref, amount_minor=2_000),
            idempotency_key="rf-buy-1",
        )
    [redemption_refund] = await events_of(pool, "redemption.refunded", shop)
    assert redemption_refund["partner_ref"] == "rf-use-1"
    assert redemption_refund["original_partner_ref"] == "use-1"
    assert redemption_refund["points"] == 10
    assert redemption_refund["shopper_id"] == holder.shopper_id
    [purchase_refund] = await events_of(pool, "purchase.refunded", shop)
    assert (purchase_refund["partner_ref"], purchase_refund["original_partner_ref"]) == (
        "rf-buy-1",
        buy_ref,
    )
    assert (purchase_refund["amount_minor"], purchase_refund["points"]) == (2_000, 20)
    assert "card_number" not in purchase_refund


async def test_a_refused_refund_records_nothing(pool: asyncpg.Pool) -> None:
    shop = await new_partner(pool)
    holder = await shopper_with_points(pool, shop, 1_000)
    buy_ref = await pool.fetchval(
        "SELECT partner_ref FROM partner_transactions WHERE shopper_id = $1", holder.shopper_id
    )
    with pytest.raises(RefundExceedsOriginal):
        async with pool.acquire() as conn, conn.transaction():
            await operations.refund(
                conn,
                shop,
                RefundRequest(partner_ref="rf-x", original_partner_ref=buy_ref, amount_minor=9_999),
                idempotency_key="rf-x",
            )
    assert await events_of(pool, "purchase.refunded", shop) == []


async def test_holds_captured_voided_and_expired_each_record_one_event(pool: asyncpg.Pool) -> None:
    shop = await new_partner(pool)
    holder = await shopper_with_points(pool, shop, 10_000)
    holds: dict[str, str] = {}
    async with pool.acquire() as conn, conn.transaction():
        for ref, expires_in_s in (("h-cap", 600), ("h-void", 600), ("h-exp", 1)):
            placed = await operations.hold(
                conn,
                shop,
                HoldRequest(
                    partner_ref=ref,
                    card_number=holder.card_number,
                    points=20,
                    expires_in_s=expires_in_s,
                ),
                idempotency_key=ref,
            )
            holds[ref] = placed.hold_id
    async with pool.acquire() as conn, conn.transaction():
        await operations.capture_hold(conn, shop, holds["h-cap"], CaptureRequest(points=15))
        await operations.void_hold(conn, shop, holds["h-void"])
    async with pool.acquire() as conn, conn.transaction():
        released = await ledger.release_expired_holds(
            conn, now=datetime.now(UTC) + timedelta(seconds=5)
        )
    assert released == 1
    [captured] = await events_of(pool, "hold.captured", shop)
    assert (captured["transaction_id"], captured["points"], captured["points_captured"]) == (
        holds["h-cap"],
        20,
        15,
    )
    [voided] = await events_of(pool, "hold.voided", shop)
    assert (voided["transaction_id"], voided["partner_ref"]) == (holds["h-void"], "h-void")
    [expired] = await events_of(pool, "hold.expired", shop)
    assert (expired["transaction_id"], expired["partner_ref"]) == (holds["h-exp"], "h-exp")
    assert expired["outbox_shopper_id"] == holder.shopper_id
    async with pool.acquire() as conn, conn.transaction():  # a second run finds nothing
        assert await ledger.release_expired_holds(conn, now=datetime.now(UTC)) == 0
    assert len(await events_of(pool, "hold.expired", shop)) == 1


async def test_the_statement_lifecycle_records_finalized_disputed_and_paid(
    pool: asyncpg.Pool,
) -> None:
    shop = await new_partner(pool)
    await shopper_with_points(pool, shop, 5_000)
    async with pool.acquire() as conn:
        period = await settlement.close_period(
            conn, period_end=datetime.now(UTC), closed_by="test", now=datetime.now(UTC)
        )
    statement = next(s for s in period.statements if s.partner_id == shop)
    async with pool.acquire() as conn:
        await settlement.dispute_statement(
            conn, statement.statement_id, actor="ops", reason="counts differ"
        )
        await settlement.finalize_statement(conn, statement.statement_id, actor="ops")
        await settlement.finalize_statement(conn, statement.statement_id, actor="ops")  # no-op
        await settlement.mark_paid(conn, statement.statement_id, actor="ops")
        await settlement.mark_paid(conn, statement.statement_id, actor="ops")  # no-op
    [disputed] = await events_of(pool, "statement.disputed", shop)
    assert (disputed["state"], disputed["state_reason"]) == ("disputed", "counts differ")
    [finalized] = await events_of(pool, "statement.finalized", shop)
    assert finalized["statement_id"] == statement.statement_id
    [paid] = await events_of(pool, "statement.paid", shop)
    assert (paid["state"], paid["payment_due_micros"]) == ("paid", statement.payment_due_micros)


async def add_endpoint(pool: asyncpg.Pool, partner_id: int, types: list[str], enabled: bool) -> int:
    endpoint_id: int = await pool.fetchval(
        "INSERT INTO webhooks.endpoint (public_id, partner_id, url, event_types, enabled)"
        " VALUES ($1, $2, 'https://example.com/hook', $3, $4) RETURNING endpoint_id",
        new_public_id("ep_"),
        partner_id,
        types,
        enabled,
    )
    return endpoint_id


async def test_an_events_endpoints_are_its_partners_enabled_subscribed_ones(
    pool: asyncpg.Pool,
) -> None:
    shop, other = await new_partner(pool), await new_partner(pool)
    wants = await add_endpoint(pool, shop, ["purchase.created", "hold.voided"], True)
    await add_endpoint(pool, shop, ["hold.voided"], True)  # not subscribed to purchases
    await add_endpoint(pool, shop, ["purchase.created"], False)  # disabled
    await add_endpoint(pool, other, ["purchase.created"], True)  # another partner's
    await shopper_with_points(pool, shop, 1_000)
    event_id = await pool.fetchval(
        "SELECT max(event_id) FROM event_outbox WHERE partner_id = $1"
        " AND event_type = 'purchase.recorded'",
        shop,
    )
    endpoints = await pool.fetch("SELECT * FROM webhooks.event_endpoints($1)", event_id)
    assert [r[0] for r in endpoints] == [wants]
    queued = await pool.fetchval(
        "SELECT count(*) FROM webhooks.fanout_queue WHERE event_id = $1", event_id
    )
    assert queued == 1


async def test_every_public_event_recorded_here_matches_its_published_schema(
    pool: asyncpg.Pool,
) -> None:
    # Runs last in the module: the events of every test above, of every public type they made.
    schemas = {item.type: item.schema for item in catalogue.catalogue().items}
    rows = await pool.fetch("SELECT event_type, payload FROM event_outbox ORDER BY event_id")
    seen: set[str] = set()
    for row in rows:
        name = catalogue.public_type(row["event_type"])
        if name is None:
            continue
        data = catalogue.public_data(row["event_type"], json.loads(row["payload"]))
        jsonschema_rs.validate(schemas[name], data)
        seen.add(name)
    assert {
        "purchase.created",
        "purchase.refunded",
        "redemption.created",
        "redemption.refunded",
        "hold.captured",
        "hold.voided",
        "hold.expired",
        "statement.ready",
        "statement.finalized",
        "statement.paid",
        "statement.disputed",
    } <= seen
