"""Operator analytics: retention, repeat purchases, baskets, NPS, liability and breakage,
points issued versus redeemed per partner, and the cross-partner flow matrix.

Every figure is computed from the source tables (partner_transactions, nps_answers, the
ledger's postings, lots and consumption) for a half-open period [start, end), with integer
arithmetic: rates are basis points of a percentage rounded half away from zero, also given as a
two-decimal string.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts.analytics import (
    AverageBasket,
    BasketRow,
    FlowCell,
    FlowMatrix,
    Liability,
    Nps,
    PartnerPoints,
    PartnerPointsRow,
    RepeatPurchase,
    Retention,
)
from contracts.errors import DomainError, ErrorCode
from infra.db import Conn
from ledger import service as ledger
from shoppers import _analytics_queries as q

__all__ = [
    "FLOW_CELLS_MAX",
    "PERIOD_DAYS_MAX",
    "AnalyticsPeriodInvalid",
    "DayPoints",
    "Period",
    "average_basket",
    "flow_matrix",
    "liability",
    "nps",
    "partner_points",
    "percent_bps",
    "period",
    "points_per_day",
    "repeat_purchase",
    "retention",
]

PERIOD_DAYS_DEFAULT = 30
PERIOD_DAYS_MAX = 3 * 366
FLOW_CELLS_MAX = 10_000
BPS_PER_PERCENT = 100
QUERY_TIMEOUT_S = 120.0

Period = tuple[datetime, datetime]


class AnalyticsPeriodInvalid(DomainError):
    code = ErrorCode.ANALYTICS_PERIOD_INVALID


def period(start: datetime | None, end: datetime | None, *, now: datetime) -> Period:
    """[start, end): end defaults to now, start to PERIOD_DAYS_DEFAULT days before end."""
    end = end or now
    start = start or end - timedelta(days=PERIOD_DAYS_DEFAULT)
    if start.utcoffset() is None or end.utcoffset() is None:
        raise AnalyticsPeriodInvalid("from and to must carry a time zone offset")
    if not start < end:
        raise AnalyticsPeriodInvalid("from must be before to")
    if end - start > timedelta(days=PERIOD_DAYS_MAX):
        raise AnalyticsPeriodInvalid(f"a period spans at most {PERIOD_DAYS_MAX} days")
    return start, end


def percent_bps(numerator: int, denominator: int) -> int | None:
    """numerator / denominator x 100, in basis points (hundredths of a percentage point),
    rounded half away from zero; None when the denominator is zero."""
    if denominator == 0:
        return None
    assert denominator > 0, denominator
    scaled = abs(numerator) * 100 * BPS_PER_PERCENT
    rounded = (scaled * 2 + denominator) // (denominator * 2)
    return rounded if numerator >= 0 else -rounded


def as_percent(bps: int | None) -> str | None:
    """Basis points as a two-decimal percentage string: 1234 -> "12.34", -5 -> "-0.05"."""
    if bps is None:
        return None
    sign = "-" if bps < 0 else ""
    return f"{sign}{abs(bps) // BPS_PER_PERCENT}.{abs(bps) % BPS_PER_PERCENT:02d}"


async def retention(conn: Conn, when: Period) -> Retention:
    row = await conn.fetchrow(q.RETENTION, *when, timeout=QUERY_TIMEOUT_S)
    assert row is not None, "an aggregate always returns a row"
    s, e, n = int(row["at_start"]), int(row["at_end"]), int(row["new_in_period"])
    assert 0 <= n <= e, (n, e)
    bps = percent_bps(e - n, s)
    return Retention(
        period_start=when[0],
        period_end=when[1],
        shoppers_at_start=s,
        shoppers_at_end=e,
        new_shoppers=n,
        retention_rate_bps=bps,
        retention_rate=as_percent(bps),
    )


async def repeat_purchase(conn: Conn, when: Period) -> RepeatPurchase:
    row = await conn.fetchrow(q.REPEAT_PURCHASE, *when, timeout=QUERY_TIMEOUT_S)
    assert row is not None, "an aggregate always returns a row"
    purchasers, repeaters = int(row["purchasers"]), int(row["repeat_purchasers"])
    bps = percent_bps(repeaters, purchasers)
    return RepeatPurchase(
        period_start=when[0],
        period_end=when[1],
        purchasers=purchasers,
        repeat_purchasers=repeaters,
        repeat_purchase_rate_bps=bps,
        repeat_purchase_rate=as_percent(bps),
    )


async def average_basket(conn: Conn, when: Period) -> AverageBasket:
    rows = await conn.fetch(q.AVERAGE_BASKET, *when, timeout=QUERY_TIMEOUT_S)
    out = [
        BasketRow(
            partner_id=row["partner_id"],
            purchases=int(row["purchases"]),
            spend_minor=int(row["spend_minor"]),
            average_basket_minor=(
                (int(row["spend_minor"]) * 2 + int(row["purchases"])) // (int(row["purchases"]) * 2)
                if row["purchases"]
                else None
            ),
        )
        for row in rows
    ]
    if not out:  # ROLLUP over no rows still returns the total row; keep the shape explicit
        out = [BasketRow(partner_id=None, purchases=0, spend_minor=0, average_basket_minor=None)]
    return AverageBasket(period_start=when[0], period_end=when[1], rows=out)


async def nps(conn: Conn, when: Period) -> Nps:
    row = await conn.fetchrow(q.NPS, *when, timeout=QUERY_TIMEOUT_S)
    assert row is not None, "an aggregate always returns a row"
    responses = int(row["responses"])
    promoters, passives, detractors = (
        int(row["promoters"]),
        int(row["passives"]),
        int(row["detractors"]),
    )
    assert promoters + passives + detractors == responses, row
    bps = percent_bps(promoters - detractors, responses)
    return Nps(
        period_start=when[0],
        period_end=when[1],
        responses=responses,
        promoters=promoters,
        passives=passives,
        detractors=detractors,
        nps_bps=bps,
        nps=as_percent(bps),
    )


async def liability(conn: Conn, when: Period) -> Liability:
    """Points outstanding and their value at issue prices now; breakage rate in the period:
    points expired / points issued (earn and goodwill) in it."""
    by_kind = {
        row["kind"]: int(row["amount"])
        for row in await conn.fetch(q.POINTS_BY_KIND, *when, timeout=QUERY_TIMEOUT_S)
    }
    issued = -(by_kind.get("earn", 0) + by_kind.get("goodwill", 0))
    expired = by_kind.get("expiry", 0)
    outstanding = -await ledger.balance(conn, ledger.network_account("points_issued"))
    deferred = -await ledger.balance(conn, ledger.network_account("deferred_revenue"))
    breakage = -await ledger.balance(conn, ledger.network_account("breakage"))
    bps = percent_bps(expired, issued)
    return Liability(
        period_start=when[0],
        period_end=when[1],
        points_outstanding=outstanding,
        liability_micros=deferred,
        breakage_micros_total=breakage,
        points_issued=issued,
        points_expired=expired,
        breakage_rate_bps=bps,
        breakage_rate=as_percent(bps),
    )


async def partner_points(conn: Conn, when: Period) -> PartnerPoints:
    rows = await conn.fetch(q.POINTS_BY_PARTNER, *when, timeout=QUERY_TIMEOUT_S)
    return PartnerPoints(
        period_start=when[0],
        period_end=when[1],
        rows=[
            PartnerPointsRow(
                partner_id=row["partner_id"],
                points_issued=int(row["points_issued"]),
                points_redeemed=int(row["points_redeemed"]),
                points_issued_reversed=int(row["points_issued_reversed"]),
                points_redeemed_reversed=int(row["points_redeemed_reversed"]),
            )
            for row in rows
        ],
    )


@dataclass(frozen=True)
class DayPoints:
    start: datetime  # the day's first instant
    issued: int  # net of refunded earns and goodwill debits
    redeemed: int  # net of refunded burns


async def points_per_day(conn: Conn, start: datetime, days: int) -> list[DayPoints]:
    """Points issued and redeemed through partners per 24 h from `start`, net of reversals, in
    one query: the same figures `partner_points` gives summed over partners, for each day."""
    assert start.tzinfo is not None, "an aware start"
    assert 1 <= days <= PERIOD_DAYS_MAX, days
    rows = await conn.fetch(q.POINTS_BY_DAY, start, days, timeout=QUERY_TIMEOUT_S)
    assert len(rows) == days, "generate_series yields every day"
    return [
        DayPoints(
            start=start + timedelta(days=row["n"]),
            issued=int(row["issued"]),
            redeemed=int(row["redeemed"]),
        )
        for row in rows
    ]


async def flow_matrix(conn: Conn, when: Period) -> FlowMatrix:
    rows = await conn.fetch(q.FLOW_MATRIX, *when, FLOW_CELLS_MAX, timeout=QUERY_TIMEOUT_S)
    return FlowMatrix(
        period_start=when[0],
        period_end=when[1],
        rows=[
            FlowCell(
                earned_partner_id=row["earned_partner_id"],
                burned_partner_id=row["burned_partner_id"],
                points=int(row["points"]),
                issue_value_micros=int(row["issue_value_micros"]),
            )
            for row in rows
        ],
    )
