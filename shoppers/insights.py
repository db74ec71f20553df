"""Partner insights about the partner's own shoppers (those with a purchase there).

Every count leaves through `_released`: a group of fewer than K_ANONYMITY_MIN shoppers is
suppressed (null), in every endpoint, whether the figure is cross-partner or not. Cross-partner
figures (segments, activity at other partners) count only shoppers who consented to data
sharing, checked at read time. No figure names a shopper, another partner, or a transaction.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from contracts.analytics import (
    K_ANONYMITY_MIN,
    CategoryReach,
    CohortRow,
    CrossPartnerActivity,
    RetentionCohorts,
    SegmentSize,
    SegmentSizes,
)
from infra.db import Conn
from shoppers import _analytics_queries as q

__all__ = [
    "COHORT_MONTHS",
    "CROSS_PARTNER_WINDOW_DAYS",
    "K_ANONYMITY_MIN",
    "cross_partner_activity",
    "retention_cohorts",
    "segment_sizes",
]

COHORT_MONTHS = 12
CROSS_PARTNER_WINDOW_DAYS = 365
CATEGORIES_MAX = 50
BPS_PER_UNIT = 10_000


def _released(shoppers: int) -> int | None:
    """The count if at least K_ANONYMITY_MIN shoppers make it up, else None (suppressed)."""
    return shoppers if shoppers >= K_ANONYMITY_MIN else None


def _share_bps(part: int | None, whole: int | None) -> int | None:
    if part is None or not whole:
        return None
    return (part * BPS_PER_UNIT * 2 + whole) // (whole * 2)  # rounded half up


async def segment_sizes(conn: Conn, partner_id: int) -> SegmentSizes:
    rows = await conn.fetch(q.INSIGHT_SEGMENT_SIZES, partner_id)
    sizes = []
    for row in rows:
        released = _released(int(row["shoppers"]))
        if released is not None:
            sizes.append(SegmentSize(segment=row["segment"], shoppers=released))
    return SegmentSizes(
        k_min=K_ANONYMITY_MIN, segments=sizes, groups_suppressed=len(rows) - len(sizes)
    )


async def retention_cohorts(conn: Conn, partner_id: int, *, now: datetime) -> RetentionCohorts:
    """Monthly cohorts by first purchase at this partner (last COHORT_MONTHS months), and how
    many of each were active at this partner 0, 1, 2, ... months later."""
    first_month = _month_start(now.date(), months_back=COHORT_MONTHS - 1)
    rows = await conn.fetch(q.INSIGHT_COHORTS, partner_id, first_month, COHORT_MONTHS)
    by_cohort: dict[date, dict[int, int]] = {}
    for row in rows:
        by_cohort.setdefault(row["cohort"], {})[row["offset_m"]] = int(row["shoppers"])
    cohorts = []
    for cohort, active in sorted(by_cohort.items()):
        size = _released(active.get(0, 0))
        span = _months_between(cohort, now.date()) + 1
        retained = [
            None if size is None else _released(active.get(n, 0))
            for n in range(min(span, COHORT_MONTHS))
        ]
        cohorts.append(
            CohortRow(
                cohort_month=cohort, shoppers=size, retained=retained, suppressed=size is None
            )
        )
    return RetentionCohorts(k_min=K_ANONYMITY_MIN, months=COHORT_MONTHS, cohorts=cohorts)


async def cross_partner_activity(
    conn: Conn, partner_id: int, *, now: datetime
) -> CrossPartnerActivity:
    """Share of this partner's consenting shoppers active at other partners, overall and by
    category bought elsewhere, within the last CROSS_PARTNER_WINDOW_DAYS."""
    since = now - timedelta(days=CROSS_PARTNER_WINDOW_DAYS)
    base = _released(int(await conn.fetchval(q.INSIGHT_CONSENTING_BASE, partner_id)))
    elsewhere = None
    categories: list[CategoryReach] = []
    suppressed = 0
    if base is not None:
        elsewhere = _released(
            int(await conn.fetchval(q.INSIGHT_ACTIVE_ELSEWHERE, partner_id, since))
        )
        rows = await conn.fetch(q.INSIGHT_CATEGORIES_ELSEWHERE, partner_id, since, CATEGORIES_MAX)
        for row in rows:
            released = _released(int(row["shoppers"]))
            share = _share_bps(released, base)
            if released is None or share is None:
                suppressed += 1
                continue
            categories.append(
                CategoryReach(category=row["category"], shoppers=released, share_bps=share)
            )
    return CrossPartnerActivity(
        k_min=K_ANONYMITY_MIN,
        window_days=CROSS_PARTNER_WINDOW_DAYS,
        consenting_shoppers=base,
        active_elsewhere=elsewhere,
        active_elsewhere_bps=_share_bps(elsewhere, base),
        categories=categories,
        groups_suppressed=suppressed,
    )


def _month_start(day: date, *, months_back: int) -> date:
    index = day.year * 12 + (day.month - 1) - months_back
    return date(index // 12, index % 12 + 1, 1)


def _months_between(start: date, end: date) -> int:
    return (end.year * 12 + end.month) - (start.year * 12 + start.month)
