"""aggregates_fold of 0193 (each shopper_stats row written once per batch, on 0090's owner lookup
by key) folds exactly what 0075's did.

The same queue is folded twice in one transaction: by 0075's function (recreated from the
migration's text as pg_temp.aggregates_fold_0075) and, after rolling back to a savepoint, by the
current aggregates_fold, with the same batch size; every aggregate row must be the same (now()
is the transaction's start, so even updated_at matches). The queue mixes what the fold
distinguishes: transaction and basket-line deltas, visits and none, refunds (negative), several
months, shoppers with rows already folded, an erased shopper, a shopper merged into a live
survivor, one merged into an erased survivor and a shopper id with no row. A second queue holds
basket lines only, for shoppers with rows: their favourite category moves without any
transaction delta in the batch (a batch boundary between a purchase's lines and its row).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from infra import migrations
from tests.support.generated_network import insert_partners, insert_shoppers

NOW = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)
TABLES = {
    "shopper_partner_stats": "shopper_id, partner_id",
    "shopper_stats": "shopper_id",
    "shopper_category_stats": "shopper_id, partner_id, category",
    "shopper_partner_months": "shopper_id, partner_id, month",
}
INSERT_DELTA = """
INSERT INTO aggregate_delta (shopper_id, partner_id, category, occurred_at, spend_minor, visits,
                             points_earned, points_burned)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::timestamptz[], $5::bigint[],
                     $6::integer[], $7::bigint[], $8::bigint[])
"""


def _fold_0075_text() -> str:
    text = (Path(migrations.MIGRATIONS_DIR) / "0075_aggregates_erasure_merge.sql").read_text()
    start = text.index("CREATE OR REPLACE FUNCTION aggregates_fold(p_batch_max integer)")
    end = text.index("END $$;", start) + len("END $$;")
    return text[start:end].replace(
        "FUNCTION aggregates_fold(", "FUNCTION pg_temp.aggregates_fold_0075(", 1
    )


def _deltas(rng: random.Random, shopper_ids: list[int], partners: list[int]) -> list[list[Any]]:
    columns: list[list[Any]] = [[] for _ in range(8)]
    for _ in range(1_500):
        shopper = rng.choice(shopper_ids)
        partner = rng.choice(partners)
        at = NOW - timedelta(days=rng.randrange(120), minutes=rng.randrange(1_440))
        kind = rng.randrange(5)
        if kind == 0:  # a basket line
            row = [shopper, partner, rng.choice(["food", "fuel", "books"]), at,
                   rng.randrange(100, 5_000), 0, 0, 0]  # fmt: skip
        elif kind == 1:  # a redemption, or its refund
            row = [shopper, partner, None, at, 0, 0, 0, rng.choice([10, 25, -10])]
        elif kind == 2:  # a refunded purchase
            row = [shopper, partner, None, at, -rng.randrange(100, 2_000), 0, -5, 0]
        else:  # a purchase
            row = [shopper, partner, None, at, rng.randrange(100, 9_000), 1,
                   rng.randrange(1, 90), 0]  # fmt: skip
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


async def _snapshot(conn: asyncpg.Connection | Any) -> dict[str, list[tuple[Any, ...]]]:
    return {
        table: [tuple(row) for row in await conn.fetch(f"SELECT * FROM {table} ORDER BY {key}")]
        for table, key in TABLES.items()
    }


async def _fold(conn: asyncpg.Connection | Any, function: str, batch: int) -> int:
    total = 0
    while folded := await conn.fetchval(f"SELECT {function}($1)", batch):
        total += folded
    return total


async def _fold_both(
    conn: asyncpg.Connection | Any, batch: int, queued: int
) -> tuple[dict[str, list[tuple[Any, ...]]], dict[str, list[tuple[Any, ...]]]]:
    """The aggregate rows after folding the queue by 0075's function, then (from the same
    state) by the current one."""
    await conn.execute("SAVEPOINT before_fold")
    assert await _fold(conn, "pg_temp.aggregates_fold_0075", batch) == queued
    old = await _snapshot(conn)
    await conn.execute("ROLLBACK TO SAVEPOINT before_fold")
    assert await _fold(conn, "aggregates_fold", batch) == queued
    new = await _snapshot(conn)
    await conn.execute("ROLLBACK TO SAVEPOINT before_fold")
    return old, new


async def test_fold_matches_0075_on_the_same_queue(pool: asyncpg.Pool) -> None:
    rng = random.Random(90)
    async with pool.acquire() as conn:
        tr = conn.transaction()
        await tr.start()
        try:
            partners = await insert_partners(conn, "foldeq", 3)
            shoppers = await insert_shoppers(conn, 12, enrolled_by=partners[0], now=NOW)
            erased, absorbed, survivor, absorbed_by_erased, erased_survivor = shoppers[:5]
            await conn.execute(
                "UPDATE shoppers SET erased_at = $2 WHERE id = ANY ($1::bigint[])",
                [erased, erased_survivor],
                NOW,
            )
            await conn.execute(
                "UPDATE shoppers SET merged_into_id = $2 WHERE id = $1", absorbed, survivor
            )
            await conn.execute(
                "UPDATE shoppers SET merged_into_id = $2 WHERE id = $1",
                absorbed_by_erased,
                erased_survivor,
            )
            missing = max(shoppers) + 1_000_000
            ids = [*shoppers, missing]
            await conn.execute(_fold_0075_text())
            # Rows folded earlier, then more queued on top of them.
            await conn.execute(INSERT_DELTA, *_deltas(rng, ids, partners))
            assert await _fold(conn, "aggregates_fold", 10_000) > 0
            await conn.execute(INSERT_DELTA, *_deltas(rng, ids, partners))
            queued = await conn.fetchval("SELECT count(*) FROM aggregate_delta")

            for batch in (97, 10_000):
                old, new = await _fold_both(conn, batch, queued)
                assert new == old
                assert new["shopper_stats"], "the comparison covers folded rows"
                owners = {row[0] for row in new["shopper_partner_stats"]}
                assert survivor in owners
                assert not owners & {erased, absorbed, absorbed_by_erased, missing}

            assert await _fold(conn, "aggregates_fold", 10_000) == queued
            live = shoppers[5:]
            row = [partners[0], "garden", NOW, 10**9, 0, 0, 0]  # a line outspending the rest
            await conn.execute(INSERT_DELTA, live, *([value] * len(live) for value in row))
            old, new = await _fold_both(conn, 10_000, len(live))
            assert new == old
            favourites = {row[0]: row[9] for row in new["shopper_stats"]}
            assert all(favourites[shopper] == "garden" for shopper in live)
        finally:
            await tr.rollback()
