"""Aggregates follow partner_transactions and purchase_lines through the trigger queue."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from shoppers import aggregates
from tests.support.generated_network import fold_all, insert_partners, insert_shoppers

NOW = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)

INSERT_TX = """
INSERT INTO partner_transactions (id, partner_id, partner_ref, kind, status, shopper_id,
    card_number, points, points_captured, amount_minor, pricing_version, original_id,
    idempotency_key, created_at)
VALUES ($1, $2, $3, $4, $5, $6, '7900000000000000', $7, 0, $8, 1, $9, $3, $10)
"""


async def _tx(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
    partner_id: int,
    shopper_id: int,
    kind: str,
    *,
    points: int,
    amount_minor: int | None = None,
    original_id: uuid.UUID | None = None,
    status: str = "completed",
    at: datetime = NOW,
) -> uuid.UUID:
    tx_id = uuid.uuid4()
    await conn.execute(
        INSERT_TX,
        tx_id,
        partner_id,
        f"ref-{tx_id}",
        kind,
        status,
        shopper_id,
        points,
        amount_minor,
        original_id,
        at,
    )
    return tx_id


@pytest.fixture(scope="module")
async def world(pool: asyncpg.Pool) -> tuple[list[int], list[int]]:
    async with pool.acquire() as conn, conn.transaction():
        partners = await insert_partners(conn, "agg", 2)
        shoppers = await insert_shoppers(conn, 4, enrolled_by=partners[0], now=NOW)
    return partners, shoppers


async def test_purchases_refunds_redemptions_and_captures_fold_into_every_level(
    pool: asyncpg.Pool, world: tuple[list[int], list[int]]
) -> None:
    (p1, p2), (shopper, *_rest) = world
    async with pool.acquire() as conn, conn.transaction():
        first = await _tx(
            conn,
            p1,
            shopper,
            "purchase",
            points=50,
            amount_minor=5_000,
            at=NOW - timedelta(days=40),
        )
        await conn.execute(
            "INSERT INTO purchase_lines VALUES ($1, 0, $2, $3, 'grocery', 3000),"
            " ($1, 1, $2, $3, 'wine', 2000)",
            first,
            shopper,
            p1,
        )
        await _tx(conn, p2, shopper, "purchase", points=120, amount_minor=12_000, at=NOW)
        await _tx(conn, p1, shopper, "refund", points=10, amount_minor=1_000, original_id=first)
        redemption = await _tx(conn, p2, shopper, "redemption", points=30)
        await _tx(conn, p2, shopper, "refund", points=5, original_id=redemption)
        hold = await _tx(conn, p1, shopper, "hold", points=20, status="open")
        await conn.execute(
            "UPDATE partner_transactions SET status = 'captured', points_captured = 15"
            " WHERE id = $1",
            hold,
        )
    assert await fold_all(pool) == 8
    async with pool.acquire() as conn:
        stats = await aggregates.shopper_stats(conn, shopper)
        pair = await conn.fetchrow(
            "SELECT * FROM shopper_partner_stats WHERE shopper_id = $1 AND partner_id = $2",
            shopper,
            p1,
        )
        categories = await conn.fetch(
            "SELECT category, spend_minor FROM shopper_category_stats WHERE shopper_id = $1"
            " ORDER BY category",
            shopper,
        )
        months = await conn.fetchval(
            "SELECT count(*) FROM shopper_partner_months WHERE shopper_id = $1", shopper
        )
    assert stats is not None
    assert stats.spend_minor == 5_000 + 12_000 - 1_000
    assert stats.visits == 2
    assert stats.points_earned == 50 + 120 - 10
    assert stats.points_burned == 30 - 5 + 15
    assert stats.first_purchase_at == NOW - timedelta(days=40)
    assert stats.last_purchase_at == NOW
    assert stats.partners_visited == 2
    assert stats.favourite_partner_id == p2
    assert stats.favourite_category == "grocery"
    assert pair is not None
    assert (pair["spend_minor"], pair["visits"], pair["points_earned"], pair["points_burned"]) == (
        4_000,
        1,
        40,
        15,
    )
    assert [(r["category"], r["spend_minor"]) for r in categories] == [
        ("grocery", 3_000),
        ("wine", 2_000),
    ]
    assert months == 2


async def test_a_late_commit_with_a_lower_id_is_never_skipped(
    pool: asyncpg.Pool, world: tuple[list[int], list[int]]
) -> None:
    (p1, _), (_, shopper, *_rest) = world
    slow = await pool.acquire()
    try:
        tx = slow.transaction()
        await tx.start()
        await _tx(slow, p1, shopper, "purchase", points=1, amount_minor=100)  # lower delta id
        async with pool.acquire() as fast, fast.transaction():
            await _tx(fast, p1, shopper, "purchase", points=2, amount_minor=200)
        assert await fold_all(pool) == 1  # only the committed one is visible
        await tx.commit()
    finally:
        await pool.release(slow)
    assert await fold_all(pool) == 1
    async with pool.acquire() as conn:
        stats = await aggregates.shopper_stats(conn, shopper)
    assert stats is not None
    assert (stats.visits, stats.spend_minor) == (2, 300)


async def test_a_rolled_back_purchase_leaves_no_trace(
    pool: asyncpg.Pool, world: tuple[list[int], list[int]]
) -> None:
    (p1, _), (_, _, shopper, _) = world
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await _tx(conn, p1, shopper, "purchase", points=1, amount_minor=100)
        await tx.rollback()
    assert await fold_all(pool) == 0
    async with pool.acquire() as conn:
        assert await aggregates.shopper_stats(conn, shopper) is None


async def test_the_lag_gauge_reports_the_oldest_unfolded_delta(
    pool: asyncpg.Pool, world: tuple[list[int], list[int]]
) -> None:
    (p1, _), (*_rest, shopper) = world
    async with pool.acquire() as conn, conn.transaction():
        await _tx(conn, p1, shopper, "purchase", points=1, amount_minor=100)
        await conn.execute("UPDATE aggregate_delta SET enqueued_at = now() - interval '42 seconds'")
    async with pool.acquire() as conn:
        lag = await conn.fetchrow(
            "SELECT * FROM (SELECT 1) x, LATERAL ("
            + (
                "SELECT coalesce(extract(epoch FROM now() - min(enqueued_at)), 0) AS s"
                " FROM aggregate_delta) y"
            )
        )
    assert lag is not None
    assert lag["s"] >= 42
    assert await aggregates.refresh_aggregates(pool) == 1
    assert aggregates.AGGREGATES_LAG_SECONDS._value.get() == 0.0


async def test_concurrent_folders_and_writers_fold_every_purchase_exactly_once(
    pool: asyncpg.Pool, world: tuple[list[int], list[int]]
) -> None:
    partners, _ = world
    async with pool.acquire() as conn, conn.transaction():
        crowd = await insert_shoppers(conn, 200, enrolled_by=partners[0], now=NOW)

    async def writer(n: int) -> None:
        async with pool.acquire() as conn, conn.transaction():
            for k in range(20):
                await _tx(conn, partners[k % 2], crowd[(n * 20 + k) % 200], "purchase",
                          points=1, amount_minor=100)  # fmt: skip

    async def folder() -> int:
        return sum([await aggregates.refresh_aggregates(pool) for _ in range(5)])

    folding = asyncio.gather(*(folder() for _ in range(4)))
    await asyncio.gather(*(writer(n) for n in range(30)))
    assert sum(await folding) <= 600
    await fold_all(pool)
    totals = await pool.fetchrow(
        "SELECT sum(visits) AS visits, sum(spend_minor) AS spend FROM shopper_stats"
        " WHERE shopper_id = ANY($1)",
        crowd,
    )
    assert totals is not None
    assert (totals["visits"], totals["spend"]) == (600, 60_000)
    pairs = await pool.fetchval(
        "SELECT sum(visits) FROM shopper_partner_stats WHERE shopper_id = ANY($1)", crowd
    )
    assert pairs == 600
