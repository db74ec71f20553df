"""A purchase's writes in one statement (`queries.PURCHASE_WRITE`, migrations 0085 and 0192): the
same rows as the separate statements wrote, in the same order, and the same refusals, each
leaving nothing written (a referral purchase's rows: test_referral_purchase_rows.py)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from contracts.partners import Line, PurchaseRequest, RedemptionRequest, RefundRequest
from ledger import service as ledger
from partners import operations, queries
from partners.errors import PartnerRefConflict
from shoppers import identity, tiers
from tests.support import program
from tests.support.round_trips import RoundTrips


@pytest.fixture(scope="module")
async def partner_id(pool: asyncpg.Pool) -> int:
    return await program.partner(pool, "writes")  # 1 point per 1.00


def request(card_number: str, ref: str, amount_minor: int, **fields: Any) -> PurchaseRequest:
    return PurchaseRequest(
        partner_ref=ref,
        card_number=card_number,
        amount_minor=amount_minor,
        currency="EUR",
        **fields,
    )


async def purchase(pool: asyncpg.Pool, partner_id: int, req: PurchaseRequest) -> Any:
    async with pool.acquire() as conn, conn.transaction():
        return await operations.purchase(
            conn, partner_id, req, idempotency_key=f"k-{req.partner_ref}"
        )


async def counted(
    pool: asyncpg.Pool, partner_id: int, req: PurchaseRequest, round_trips: RoundTrips
) -> int:
    """A purchase's round trips (asyncpg Connection calls made inside `operations.purchase`)."""
    async with pool.acquire() as conn, conn.transaction():
        before = round_trips.count
        await operations.purchase(conn, partner_id, req, idempotency_key=req.partner_ref)
        return round_trips.count - before


async def written_for(pool: asyncpg.Pool, partner_id: int, ref: str) -> dict[str, int]:
    """What a purchase with this ref left behind, table by table."""
    return {
        "transactions": await pool.fetchval(
            "SELECT count(*) FROM partner_transactions WHERE partner_id = $1 AND partner_ref = $2",
            partner_id,
            ref,
        ),
        "events": await pool.fetchval(
            "SELECT count(*) FROM event_outbox WHERE payload ->> 'partner_ref' = $1", ref
        ),
        "entries": await pool.fetchval(
            "SELECT count(*) FROM ledger.entry WHERE idempotency_key LIKE $1",
            f"partner:{partner_id}:%:{ref}",
        ),
    }


async def test_a_plain_purchase_writes_its_rows_in_one_statement(
    pool: asyncpg.Pool, partner_id: int
) -> None:
    holder = await program.shopper(pool, partner_id)
    lines = [Line(sku="a", category="fresh", amount_minor=1_200), Line(sku="b", amount_minor=300)]
    result = await purchase(
        pool, partner_id, request(holder.card_number, "w-1", 2_500, lines=lines)
    )

    row = await pool.fetchrow(
        "SELECT * FROM partner_transactions WHERE id = $1::uuid", result.transaction_id
    )
    entry = await pool.fetchrow(
        "SELECT entry_id, kind, metadata FROM ledger.entry WHERE idempotency_key = $1",
        f"partner:{partner_id}:ref:w-1",
    )
    assert row is not None
    assert entry is not None
    assert (row["kind"], row["status"], row["points"], row["amount_minor"]) == (
        "purchase",
        "completed",
        25,
        2_500,
    )
    assert (row["ledger_entry_id"], row["network_points"], row["network_entry_id"]) == (
        entry["entry_id"],
        0,
        None,
    )
    assert row["idempotency_key"] == "k-w-1"
    assert row["card_number"] == holder.card_number
    assert entry["kind"] == "earn"
    assert json.loads(entry["metadata"]) == {"partner_ref": "w-1", "amount_minor": 2_500}
    assert [
        tuple(r)
        for r in await pool.fetch(
            "SELECT line_no, category, amount_minor FROM purchase_lines "
            "WHERE transaction_id = $1::uuid ORDER BY line_no",
            result.transaction_id,
        )
    ] == [(0, "fresh", 1_200), (1, "uncategorized", 300)]
    assert [
        tuple(r)
        for r in await pool.fetch(
            "SELECT item_no, kind, points, campaign_id, paid_by FROM purchase_breakdown "
            "WHERE transaction_id = $1::uuid ORDER BY item_no",
            result.transaction_id,
        )
    ] == [(0, "base", 25, None, "partner")]
    events = await pool.fetch(
        "SELECT event_type, partner_id, payload FROM event_outbox WHERE shopper_id = $1",
        holder.shopper_id,
    )
    assert [(e["event_type"], e["partner_id"]) for e in events] == [
        ("purchase.recorded", partner_id)
    ]
    assert json.loads(events[0]["payload"]) == {
        "transaction_id": result.transaction_id,
        "partner_ref": "w-1",
        "points": 25,
        "shopper_id": holder.shopper_id,
        "amount_minor": 2_500,
    }
    assert (result.points_earned, result.balance) == (25, 25)


async def test_a_network_campaign_is_credited_in_the_same_statement(
    pool: asyncpg.Pool, partner_id: int
) -> None:
    holder = await program.shopper(pool, partner_id)
    await program.campaign(pool, None, bonus_points=7)
    try:
        result = await purchase(pool, partner_id, request(holder.card_number, "w-net", 1_000))
    finally:
        await program.end_all_campaigns(pool)
    row = await pool.fetchrow(
        "SELECT points, network_points, ledger_entry_id, network_entry_id "
        "FROM partner_transactions WHERE id = $1::uuid",
        result.transaction_id,
    )
    kinds = {
        r["entry_id"]: r["kind"]
        for r in await pool.fetch(
            "SELECT entry_id, kind FROM ledger.entry WHERE idempotency_key LIKE $1",
            f"partner:{partner_id}:%:w-net",
        )
    }
    assert row is not None
    assert (row["points"], row["network_points"]) == (10, 7)
    assert kinds == {row["ledger_entry_id"]: "earn", row["network_entry_id"]: "goodwill"}
    assert (result.points_earned, result.balance) == (17, 17)


async def test_the_purchases_own_row_qualifies_and_the_tier_event_comes_first(
    pool: asyncpg.Pool, partner_id: int, round_trips: RoundTrips
) -> None:
    silver = tiers.TIERS[1]
    holder = await program.shopper(pool, partner_id)
    await program.buy(pool, partner_id, holder.card_number, silver.spend_minor_min - 1_000)
    assert (
        await pool.fetchval(
            "SELECT tier FROM shopper_tiers WHERE shopper_id = $1", holder.shopper_id
        )
    ) is None

    # It reaches silver: the write (tier row ensured and locked in it), the change, the event.
    assert (
        await counted(pool, partner_id, request(holder.card_number, "w-up", 1_000), round_trips)
        == 5
    )

    assert (
        await pool.fetchval(
            "SELECT tier FROM shopper_tiers WHERE shopper_id = $1", holder.shopper_id
        )
        == silver.name
    )
    events = await pool.fetch(
        "SELECT event_type, payload FROM event_outbox WHERE shopper_id = $1 ORDER BY event_id",
        holder.shopper_id,
    )
    assert [e["event_type"] for e in events] == [
        "purchase.recorded",
        "tier.changed",
        "purchase.recorded",
    ]
    assert json.loads(events[1]["payload"])["spend_minor_12m"] == silver.spend_minor_min
    assert json.loads(events[2]["payload"])["partner_ref"] == "w-up"
    # A silver shopper's next purchase: no change, one event, the read and the write.
    assert (
        await counted(pool, partner_id, request(holder.card_number, "w-up-2", 1_000), round_trips)
        == 2
    )
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM event_outbox WHERE shopper_id = $1", holder.shopper_id
        )
        == 4
    )


async def test_a_ledger_key_taken_is_a_partner_ref_conflict_that_writes_nothing(
    pool: asyncpg.Pool, partner_id: int
) -> None:
    holder = await program.shopper(pool, partner_id)
    expires_at = datetime.now(UTC) + timedelta(days=1)
    async with pool.acquire() as conn, conn.transaction():
        await ledger.earn(
            conn,
            idempotency_key=f"partner:{partner_id}:ref:w-taken",
            shopper_id=holder.shopper_id,
            partner_id=partner_id,
            points=1,
            issue_price_micros=10_000,
            expires_at=expires_at,
        )
    before = await written_for(pool, partner_id, "w-taken")
    with pytest.raises(PartnerRefConflict) as refused:
        await purchase(pool, partner_id, request(holder.card_number, "w-taken", 1_000))
    assert refused.value.code == "partner_ref_conflict"
    assert (
        await written_for(pool, partner_id, "w-taken")
        == before
        == {
            "transactions": 0,
            "events": 0,
            "entries": 1,
        }
    )

    # The network-paid entry's key taken: the partner's earn made before it is rolled back.
    async with pool.acquire() as conn, conn.transaction():
        await ledger.goodwill(
            conn,
            idempotency_key=f"partner:{partner_id}:network:w-net-taken",
            shopper_id=holder.shopper_id,
            partner_id=None,
            points=1,
            issue_price_micros=10_000,
            expires_at=expires_at,
            reason="campaign",
        )
    await program.campaign(pool, None, bonus_points=5)
    try:
        with pytest.raises(PartnerRefConflict):
            await purchase(pool, partner_id, request(holder.card_number, "w-net-taken", 1_000))
    finally:
        await program.end_all_campaigns(pool)
    assert await written_for(pool, partner_id, "w-net-taken") == {
        "transactions": 0,
        "events": 0,
        "entries": 1,
    }
    assert await program.balance(pool, holder.card_number) == 2  # the two seeded entries


async def test_a_ref_taken_concurrently_without_points_is_a_partner_ref_conflict(
    pool: asyncpg.Pool,
) -> None:
    """No ledger call (the basket earns nothing): the record's own unique key decides."""
    partner_id = await program.partner(pool, "pointless", earn_points=1, earn_spend_minor=10_000)
    holder = await program.shopper(pool, partner_id)
    first = await pool.acquire()
    try:
        transaction = first.transaction()
        await transaction.start()
        await operations.purchase(
            first, partner_id, request(holder.card_number, "w-same", 100), idempotency_key="a"
        )
        second = asyncio.create_task(
            purchase(pool, partner_id, request(holder.card_number, "w-same", 100))
        )
        await asyncio.sleep(0.3)  # the second waits on the first's row
        await transaction.commit()
    finally:
        await pool.release(first)
    with pytest.raises(PartnerRefConflict):
        await second
    assert await written_for(pool, partner_id, "w-same") == {
        "transactions": 1,
        "events": 1,
        "entries": 0,
    }


async def test_the_write_qualifies_as_qualification_12m(
    pool: asyncpg.Pool, partner_id: int
) -> None:
    """The write's qualification (`shopper_qualification_12m`, as QUALIFICATION_12M's) counts
    purchases net of their refunds (not of a redemption's), the shoppers merged into this one,
    the last 12 months."""
    holder = await program.shopper(pool, partner_id)
    absorbed = await program.shopper(pool, partner_id)
    for amount in (3_000, 4_000):
        await program.buy(pool, partner_id, holder.card_number, amount)
    await program.buy(pool, partner_id, absorbed.card_number, 2_000)
    original = await program.buy(pool, partner_id, holder.card_number, 5_000)
    async with pool.acquire() as conn, conn.transaction():
        ref = await conn.fetchval(
            "SELECT partner_ref FROM partner_transactions WHERE id = $1::uuid",
            original.transaction_id,
        )
        await operations.refund(
            conn,
            partner_id,
            RefundRequest(partner_ref="w-refund", original_partner_ref=ref, amount_minor=1_500),
            idempotency_key="w-refund",
        )
        await operations.redeem(
            conn,
            partner_id,
            RedemptionRequest(partner_ref="w-redeem", card_number=holder.card_number, points=20),
            idempotency_key="w-redeem",
        )
        await operations.refund(
            conn,
            partner_id,
            RefundRequest(partner_ref="w-refund-2", original_partner_ref="w-redeem", points=5),
            idempotency_key="w-refund-2",
        )
        await identity.merge_shoppers(
            conn,
            survivor_id=holder.shopper_id,
            absorbed_id=absorbed.shopper_id,
            reason="test",
            operator="test",
            now=datetime.now(UTC),
        )
    counted = []
    for at in (datetime.now(UTC), datetime.now(UTC) + timedelta(days=400)):
        async with pool.acquire() as conn:
            transaction = conn.transaction()
            await transaction.start()
            try:
                written = await conn.fetchrow(
                    queries.PURCHASE_WRITE,
                    uuid.uuid4(),
                    partner_id,
                    f"w-q-{at.timestamp()}",
                    holder.shopper_id,
                    holder.card_number,
                    0,
                    1,
                    "w-q",
                    10_000,
                    at,
                    "unused",
                    0,
                    "{}",
                    "unused",
                    0,
                    "{}",
                    at,
                    [],
                    [],
                    [],
                    [],
                    [],
                    [],
                    ["never"],
                    [10**12],
                    [10**12],
                    "{}",
                )
                expected = await conn.fetchrow(tiers.QUALIFICATION_12M, holder.shopper_id, at)
            finally:
                await transaction.rollback()
        assert written is not None
        assert expected is not None
        assert (written["points_earned"], written["spend_minor"]) == (
            expected["points_earned"],
            expected["spend_minor"],
        )
        assert written["event_recorded"]
        counted.append((written["points_earned"], written["spend_minor"]))
    assert counted == [(30 + 40 + 50 + 20 - 15, 14_000 - 1_500), (0, 0)]  # not the redemption


async def test_the_qualification_function_is_inlined_into_its_callers_plan(
    pool: asyncpg.Pool,
) -> None:
    """`shopper_qualification_12m` (0192) is planned inside the statement that uses it, as
    the copies it replaced were (a function scan would hide its index use from the plan)."""
    plan = await pool.fetchval(
        "EXPLAIN (FORMAT JSON) SELECT q.* FROM unnest($1::bigint[]) x (id) "
        "CROSS JOIN LATERAL shopper_qualification_12m(x.id, now()) q",
        [1, 2],
    )
    assert "shopper_qualification_12m" not in plan
    assert "partner_transactions" in plan
