"""A merge folds the absorbed shopper's aggregated data into the survivor's, in the merge's
transaction: sums add, the first purchase is the earlier one and the last the later one,
per-partner, category and month rows combine, favourites are recomputed, and nothing stays
under the absorbed id, not even deltas that land after the merge."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from ledger.verify import verify
from shoppers import aggregates, identity, segments
from tests.support.generated_network import fold_all, insert_partners, insert_shoppers

NOW = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)
SHOPPER_KEYED_TABLES = (
    "aggregate_delta",
    "shopper_stats",
    "shopper_partner_stats",
    "shopper_category_stats",
    "shopper_partner_months",
    "shopper_scores",
    "shopper_segments",
)

INSERT_PURCHASE = """
INSERT INTO partner_transactions (id, partner_id, partner_ref, kind, status, shopper_id,
    card_number, points, points_captured, amount_minor, pricing_version, idempotency_key,
    created_at)
VALUES ($1, $2, $3, 'purchase', 'completed', $4, '7900000000000000', $5, 0, $6, 1, $3, $7)
"""
INSERT_LINE = "INSERT INTO purchase_lines VALUES ($1, 0, $2, $3, $4, $5)"


async def _purchase(
    conn: asyncpg.pool.PoolConnectionProxy,
    partner_id: int,
    shopper_id: int,
    amount_minor: int,
    category: str,
    at: datetime,
) -> None:
    tx_id = uuid.uuid4()
    await conn.execute(
        INSERT_PURCHASE, tx_id, partner_id, f"m-{tx_id}", shopper_id, amount_minor // 100,
        amount_minor, at,
    )  # fmt: skip
    await conn.execute(INSERT_LINE, tx_id, shopper_id, partner_id, category, amount_minor)


async def _rows_naming(conn: asyncpg.pool.PoolConnectionProxy, shopper_id: int) -> int:
    total = 0
    for table in SHOPPER_KEYED_TABLES:
        total += await conn.fetchval(
            f"SELECT count(*) FROM {table} WHERE shopper_id = $1",
            shopper_id,
        )
    return total


async def test_the_survivor_carries_both_shoppers_purchases(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        shop_a, shop_b = await insert_partners(conn, "merge-agg", 2)
        survivor, absorbed = await insert_shoppers(conn, 2, enrolled_by=shop_a, now=NOW)
        # The survivor buys at B; the absorbed shopper at A (twice, earlier) and once at B.
        await _purchase(conn, shop_b, survivor, 2_000, "wine", NOW - timedelta(days=10))
        await _purchase(conn, shop_a, absorbed, 6_000, "grocery", NOW - timedelta(days=60))
        await _purchase(conn, shop_a, absorbed, 4_000, "grocery", NOW - timedelta(days=40))
        await _purchase(conn, shop_b, absorbed, 1_000, "wine", NOW - timedelta(days=5))
    await fold_all(pool)
    assert await segments.refresh_segments(pool, now=NOW, interval_s=0) > 0

    async with pool.acquire() as conn, conn.transaction():
        await identity.merge_shoppers(
            conn,
            survivor_id=survivor,
            absorbed_id=absorbed,
            reason="same person",
            operator="test",
            now=NOW,
        )
        assert await _rows_naming(conn, absorbed) == 0  # in the merge's own transaction
        # A purchase in flight on the absorbed card lands after the merge.
        await _purchase(conn, shop_a, absorbed, 500, "bakery", NOW - timedelta(days=1))
    await fold_all(pool)

    async with pool.acquire() as conn:
        stats = await aggregates.shopper_stats(conn, survivor)
        pairs = {
            row["partner_id"]: row
            for row in await conn.fetch(
                "SELECT * FROM shopper_partner_stats WHERE shopper_id = $1", survivor
            )
        }
        categories = {
            row["category"]: row["spend_minor"]
            for row in await conn.fetch(
                "SELECT category, sum(spend_minor)::bigint AS spend_minor"
                " FROM shopper_category_stats WHERE shopper_id = $1 GROUP BY category",
                survivor,
            )
        }
        months = await conn.fetchval(
            "SELECT sum(visits) FROM shopper_partner_months WHERE shopper_id = $1", survivor
        )
        absorbed_rows = await _rows_naming(conn, absorbed)
        assert await verify(conn) == []
    assert stats is not None
    assert (stats.spend_minor, stats.visits, stats.partners_visited) == (13_500, 5, 2)
    assert stats.first_purchase_at == NOW - timedelta(days=60)
    assert stats.last_purchase_at == NOW - timedelta(days=1)
    assert stats.favourite_partner_id == shop_a  # 10,500 at A against 3,000 at B
    assert stats.favourite_category == "grocery"
    assert (pairs[shop_a]["visits"], pairs[shop_a]["spend_minor"]) == (3, 10_500)
    assert (pairs[shop_b]["visits"], pairs[shop_b]["spend_minor"]) == (2, 3_000)
    assert pairs[shop_b]["first_purchase_at"] == NOW - timedelta(days=10)
    assert pairs[shop_b]["last_purchase_at"] == NOW - timedelta(days=5)
    assert categories == {"grocery": 10_000, "wine": 3_000, "bakery": 500}
    assert months == 5
    assert absorbed_rows == 0

    # The next refresh scores the survivor on the combined history, and the absorbed id not.
    await segments.refresh_segments(pool, now=NOW + timedelta(hours=2), interval_s=0)
    async with pool.acquire() as conn:
        assert await _rows_naming(conn, absorbed) == 0
        scored = await conn.fetchval(
            "SELECT count(*) FROM shopper_scores WHERE shopper_id = $1", survivor
        )
    assert scored == 1
