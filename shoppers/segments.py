"""Segments: RFM scores and named segments, churn, birthday, affinity and value audiences.

`refresh_segments` recomputes every membership with set-based SQL (segments_refresh() in
0061_segment_refresh.sql): memory stays bounded by PostgreSQL's work_mem whatever the number
of shoppers, and only the memberships that changed are written. Readers (campaign conditions,
checkout profiles) read `shopper_segments`.

Segments (stable identifiers, checked by shopper_segments' CHECK):
- one named RFM segment: champions, loyal, new, promising, at_risk, hibernating, lost;
- churn_90 / churn_180: no purchase anywhere for 90 / 180 days (reactivation audiences; a
  shopper in churn_180 is also in churn_90);
- high_value: top fifth of predicted 12-month value;
- affinity:<category>: a category with at least a quarter of the shopper's basket spend;
- birthday_month: the shopper's birthday is in the current month (network time zone).
Every segment except birthday_month is derived from behaviour across partners, so only shoppers
who consented to data sharing get them. Erased and absorbed (merged) shoppers get no score and no
segment: erasure and merge delete theirs in their own transaction, and the refresh skips them. A
refresh that is writing while an erasure commits can leave that shopper's rows until the next
refresh, which removes every score and membership it did not recompute.
"""

from __future__ import annotations

from datetime import datetime

from infra.db import Conn, Pool
from shoppers import _analytics_queries as q

__all__ = [
    "NAMED_SEGMENTS",
    "SEGMENT_REFRESH_INTERVAL_S",
    "refresh_segments",
    "segments_of",
]

NAMED_SEGMENTS = ("champions", "loyal", "promising", "new", "at_risk", "hibernating", "lost")
SEGMENT_REFRESH_INTERVAL_S = 3_600  # one refresh per hour across all processes
SEGMENT_REFRESH_TIMEOUT_S = 1_800.0
SEGMENTS_PER_SHOPPER_MAX = 32


async def refresh_segments(
    pool: Pool, *, now: datetime, interval_s: int = SEGMENT_REFRESH_INTERVAL_S
) -> int:
    """Worker job: recompute segments as of `now` when the last refresh is older than
    `interval_s`. Returns the memberships written, or 0 when not due or another process is
    refreshing (a transaction advisory lock makes it single-flight)."""
    assert now.utcoffset() is not None, "now must be timezone-aware"
    assert interval_s >= 0, interval_s
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval(q.SEGMENTS_LOCK):
            return 0
        if not await conn.fetchval(q.SEGMENTS_DUE, now, float(interval_s)):
            return 0
        members: int = await conn.fetchval(
            q.SEGMENTS_REFRESH, now, timeout=SEGMENT_REFRESH_TIMEOUT_S
        )
    return members


async def segments_of(conn: Conn, shopper_id: int) -> list[str]:
    """A shopper's current segments, sorted."""
    rows = await conn.fetch(q.SEGMENTS_OF, shopper_id, SEGMENTS_PER_SHOPPER_MAX)
    return [row["segment"] for row in rows]
