"""Aggregated shopper data: the folder that keeps it current, and its reads.

Triggers on partner_transactions and purchase_lines (0060_shopper_aggregates.sql) queue one
delta row per change in the change's own transaction; `refresh_aggregates` folds the queue into
per shopper, shopper x partner, shopper x partner x category and shopper x partner x month rows.
Erasure deletes a shopper's rows and the folder drops its later deltas; a merge moves the
absorbed shopper's rows into the survivor's and the folder credits its later deltas to the
survivor (0075_aggregates_erasure_merge.sql).
The purchase path is not touched, and the lag (age of the oldest unfolded delta) is exported as
`coalition_aggregates_lag_seconds`.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from prometheus_client import Gauge

from infra.db import Conn, Pool
from shoppers import _analytics_queries as q

__all__ = [
    "AGGREGATES_LAG_SECONDS",
    "FOLD_BATCHES_PER_RUN_MAX",
    "FOLD_BATCH_MAX",
    "ShopperStats",
    "erase_shopper",
    "fold_once",
    "merge_shopper",
    "refresh_aggregates",
    "shopper_stats",
]

FOLD_BATCH_MAX = 10_000  # deltas per transaction
FOLD_BATCHES_PER_RUN_MAX = 20  # transactions per run; a full run re-runs at once
FOLD_TIMEOUT_S = 60.0

AGGREGATES_LAG_SECONDS = Gauge(
    "coalition_aggregates_lag_seconds",
    "Age of the oldest transaction not yet folded into the shopper aggregates (0: none)",
    multiprocess_mode="mostrecent",  # read from the database by every worker: the latest
)
AGGREGATES_QUEUED = Gauge(
    "coalition_aggregates_queued",
    "Shopper aggregate deltas waiting to be folded",
    multiprocess_mode="mostrecent",
)


class ShopperStats(msgspec.Struct, frozen=True, kw_only=True):
    shopper_id: int
    spend_minor: int
    visits: int
    first_purchase_at: datetime | None
    last_purchase_at: datetime | None
    points_earned: int
    points_burned: int
    partners_visited: int
    favourite_partner_id: int | None
    favourite_category: str | None


async def fold_once(conn: Conn, *, batch_max: int = FOLD_BATCH_MAX) -> int:
    """Fold one batch of queued deltas in its own transaction; returns how many were folded
    (0 also when another process is folding right now)."""
    assert 1 <= batch_max <= FOLD_BATCH_MAX, batch_max
    async with conn.transaction():
        folded: int = await conn.fetchval(q.AGGREGATES_FOLD, batch_max, timeout=FOLD_TIMEOUT_S)
    return folded


async def refresh_aggregates(pool: Pool) -> int:
    """Worker job: fold queued deltas (bounded batches), then export the lag. Returns the
    number of deltas folded."""
    folded_total = 0
    async with pool.acquire() as conn:
        for _ in range(FOLD_BATCHES_PER_RUN_MAX):
            folded = await fold_once(conn)
            folded_total += folded
            if folded < FOLD_BATCH_MAX:
                break
        row = await conn.fetchrow(q.AGGREGATES_LAG)
    assert row is not None, "an aggregate always returns a row"
    AGGREGATES_LAG_SECONDS.set(float(row["lag_s"]))
    AGGREGATES_QUEUED.set(float(row["queued"]))
    return folded_total


async def erase_shopper(conn: Conn, shopper_id: int) -> int:
    """Delete every aggregate, score and segment row of an erased shopper, and its queued
    deltas, in the caller's (erasure) transaction; returns the rows deleted.

    Waits for a running fold (one bounded batch) so no fold can write the shopper back after
    this; later folds drop the shopper's deltas because `shoppers.erased_at` is set."""
    deleted: int = await conn.fetchval(q.AGGREGATES_ERASE, shopper_id, timeout=FOLD_TIMEOUT_S)
    return deleted


async def merge_shopper(conn: Conn, *, absorbed_id: int, survivor_id: int) -> int:
    """Fold the absorbed shopper's aggregates into the survivor's in the caller's (merge)
    transaction and delete the absorbed rows; returns the shopper x partner rows moved.

    Waits for a running fold, like `erase_shopper`; later folds credit the absorbed shopper's
    deltas to the survivor through `shoppers.merged_into_id`."""
    assert absorbed_id != survivor_id, absorbed_id
    moved: int = await conn.fetchval(
        q.AGGREGATES_MERGE, absorbed_id, survivor_id, timeout=FOLD_TIMEOUT_S
    )
    return moved


async def shopper_stats(conn: Conn, shopper_id: int) -> ShopperStats | None:
    row = await conn.fetchrow(q.SHOPPER_STATS, shopper_id)
    return None if row is None else ShopperStats(**dict(row))
