"""Erasure reaches the aggregated shopper data: nothing keyed to the shopper stays in the
aggregate, score or segment tables, no later fold or refresh brings it back, its referral code
stops working, and the books and the network analytics stay sound."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from contracts.shoppers import ConsentUpdate
from ledger.verify import verify
from shoppers import account, analytics, erasure, insights, referrals, segments
from shoppers.referrals import ReferralCodeUnknown
from tests.support import program
from tests.support.generated_network import fold_all

# Every table that keys aggregated data to a shopper.
SHOPPER_KEYED_TABLES = (
    "aggregate_delta",
    "shopper_stats",
    "shopper_partner_stats",
    "shopper_category_stats",
    "shopper_partner_months",
    "shopper_scores",
    "shopper_segments",
)
ERASURE_WAIT_S = 0.3
OTHER_SHOPPERS = 11  # the erased one makes 12 consenting: above k = 10 before and after

# A purchase that was in flight when the erasure committed: it lands after it.
LATE_PURCHASE = """
INSERT INTO partner_transactions (id, partner_id, partner_ref, kind, status, shopper_id,
    card_number, points, points_captured, amount_minor, pricing_version, idempotency_key,
    created_at)
VALUES ($1, $2, $3, 'purchase', 'completed', $4, $5, 10, 0, 4000, 1, $3, now())
"""


async def _rows_naming(conn: asyncpg.pool.PoolConnectionProxy, shopper_id: int) -> dict[str, int]:
    counts = {}
    for table in SHOPPER_KEYED_TABLES:
        counts[table] = await conn.fetchval(
            f"SELECT count(*) FROM {table} WHERE shopper_id = $1",
            shopper_id,
        )
    return counts


async def _consent(pool: asyncpg.Pool, shopper_id: int, *, data_sharing: bool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await account.update_consent(
            conn, shopper_id, ConsentUpdate(data_sharing=data_sharing, marketing=False)
        )


async def test_erasure_leaves_no_aggregate_and_nothing_comes_back(pool: asyncpg.Pool) -> None:
    shop_a = await program.partner(pool, "erase-agg-a")
    shop_b = await program.partner(pool, "erase-agg-b")
    erased = await program.shopper(pool, shop_a)
    others = [await program.shopper(pool, shop_a) for _ in range(OTHER_SHOPPERS)]
    for holder in (erased, *others):
        await _consent(pool, holder.shopper_id, data_sharing=True)
        await program.buy(pool, shop_a, holder.card_number, 5_000, lines=[("grocery", 5_000)])
        await program.buy(pool, shop_b, holder.card_number, 3_000, lines=[("wine", 3_000)])
    referrer, friend = others[0], await program.shopper(pool, shop_a)
    async with pool.acquire() as conn, conn.transaction():
        erased_code = await referrals.code_for(conn, erased.shopper_id)
        await referrals.register(
            conn,
            referred_shopper_id=erased.shopper_id,
            code=await referrals.code_for(conn, referrer.shopper_id),
        )
        await referrals.register(conn, referred_shopper_id=friend.shopper_id, code=erased_code)
    now = datetime.now(UTC)
    await fold_all(pool)
    assert await segments.refresh_segments(pool, now=now, interval_s=0) > 0
    async with pool.acquire() as conn:
        before = await _rows_naming(conn, erased.shopper_id)
        reach_before = await insights.cross_partner_activity(conn, shop_a, now=now)
        basket_before = await analytics.average_basket(conn, (now - timedelta(days=1), now))
    assert before["shopper_stats"] == 1
    assert before["shopper_scores"] == 1
    assert before["shopper_segments"] > 0
    assert before["shopper_category_stats"] == 2
    assert reach_before.consenting_shoppers == OTHER_SHOPPERS + 1

    async with pool.acquire() as conn, conn.transaction():
        await erasure.erase(conn, erased.shopper_id, now=now)
        assert set((await _rows_naming(conn, erased.shopper_id)).values()) == {0}
        # A purchase in flight at the erasure commits after it: its delta must not count.
        tx_id = uuid.uuid4()
        await conn.execute(
            LATE_PURCHASE,
            tx_id,
            shop_b,
            f"late-{tx_id}",
            erased.shopper_id,
            erased.card_number,
        )

    assert await fold_all(pool) == 1
    assert await segments.refresh_segments(pool, now=now + timedelta(minutes=1), interval_s=0) > 0
    async with pool.acquire() as conn:
        assert set((await _rows_naming(conn, erased.shopper_id)).values()) == {0}
        assert await verify(conn) == []
        # Insights and analytics still answer, and the rest of the network is intact.
        reach = await insights.cross_partner_activity(conn, shop_a, now=now)
        sizes = await insights.segment_sizes(conn, shop_a)
        cohorts = await insights.retention_cohorts(conn, shop_a, now=now)
        basket = await analytics.average_basket(
            conn, (now - timedelta(days=1), now + timedelta(minutes=5))
        )
        others_stats = await conn.fetchval(
            "SELECT count(*) FROM shopper_stats WHERE shopper_id = ANY ($1::bigint[])",
            [h.shopper_id for h in others],
        )
    assert reach.consenting_shoppers == OTHER_SHOPPERS
    assert reach.active_elsewhere == OTHER_SHOPPERS
    assert sum(s.shoppers for s in sizes.segments) >= OTHER_SHOPPERS
    assert [c.shoppers for c in cohorts.cohorts] == [OTHER_SHOPPERS]
    assert others_stats == OTHER_SHOPPERS
    # Operator totals are computed from partner_transactions: the erased shopper's purchases
    # (and the late one) still count there, under a bare id that names no one.
    assert basket.rows[0].purchases == basket_before.rows[0].purchases + 1


async def test_an_erased_shoppers_referral_code_stops_working_and_is_forgotten(
    pool: asyncpg.Pool,
) -> None:
    shop = await program.partner(pool, "erase-ref")
    erased = await program.shopper(pool, shop)
    friend = await program.shopper(pool, shop)
    latecomer = await program.shopper(pool, shop)
    async with pool.acquire() as conn, conn.transaction():
        code = await referrals.code_for(conn, erased.shopper_id)
        await referrals.register(conn, referred_shopper_id=friend.shopper_id, code=code)
    async with pool.acquire() as conn, conn.transaction():
        await erasure.erase(conn, erased.shopper_id, now=datetime.now(UTC))
    async with pool.acquire() as conn:
        with pytest.raises(ReferralCodeUnknown):
            async with conn.transaction():
                await referrals.register(conn, referred_shopper_id=latecomer.shopper_id, code=code)
        assert await conn.fetchval("SELECT count(*) FROM referral_codes WHERE code = $1", code) == 0
        links = await conn.fetchval(
            "SELECT count(*) FROM referrals WHERE $1 IN (referrer_shopper_id, referred_shopper_id)",
            erased.shopper_id,
        )
        assert links == 0

    # The friend still gets their own bonus at the first qualifying purchase; nobody else does.
    bought = await program.buy(pool, shop, friend.card_number, referrals.QUALIFYING_PURCHASE_MINOR)
    assert [item.kind for item in bought.breakdown if item.kind == "referral"] == ["referral"]
    async with pool.acquire() as conn:
        rewarded = await conn.fetchrow(
            "SELECT referrer_shopper_id, rewarded_at FROM referrals WHERE referred_shopper_id = $1",
            friend.shopper_id,
        )
        erased_balance = await conn.fetchval(
            "SELECT coalesce(sum(remaining), 0) FROM ledger.lot WHERE shopper_id = $1",
            erased.shopper_id,
        )
        assert await verify(conn) == []
    assert rewarded is not None
    assert rewarded["referrer_shopper_id"] is None
    assert rewarded["rewarded_at"] is not None
    assert erased_balance == 0


async def test_an_erasure_waits_for_a_running_fold_and_then_removes_what_it_wrote(
    pool: asyncpg.Pool,
) -> None:
    shop = await program.partner(pool, "erase-race")
    holder = await program.shopper(pool, shop)
    await fold_all(pool)
    await program.buy(pool, shop, holder.card_number, 5_000, lines=[("grocery", 5_000)])
    async with pool.acquire() as folder, pool.acquire() as eraser:
        fold = folder.transaction()
        await fold.start()
        # The fold writes the shopper's first rows and has not committed yet.
        assert await folder.fetchval("SELECT aggregates_fold(1000)") > 0

        async def erase() -> None:
            async with eraser.transaction():
                await erasure.erase(eraser, holder.shopper_id, now=datetime.now(UTC))

        erasing = asyncio.create_task(erase())
        await asyncio.sleep(ERASURE_WAIT_S)
        assert not erasing.done(), "the erasure must wait for the running fold"
        await fold.commit()
        await asyncio.wait_for(erasing, timeout=ERASURE_WAIT_S * 20)
    async with pool.acquire() as conn:
        assert set((await _rows_naming(conn, holder.shopper_id)).values()) == {0}
