"""Retention figures (issue 19): CRR per partner and for the network, customer lifetime value
per segment, and the ABC x XYZ matrix of shoppers, for a half-open period [start, end).

Exact: counts and sums come from SQL as integers; ratios are Fractions, rounded once, half away
from zero, at the end. The operator's view covers the network; a partner's view (`partner_id`)
covers its own purchases, and every figure about fewer than K_ANONYMITY_MIN shoppers is
suppressed (null) there; segment figures, which come from network-wide behaviour, count only
shoppers who consented to data sharing.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from contracts.analytics import (
    K_ANONYMITY_MIN,
    AbcXyz,
    AbcXyzCell,
    LifetimeValueRow,
    LifetimeValues,
    RetentionRateRow,
    RetentionRates,
)
from infra.db import Conn
from shoppers import _analytics_queries as q
from shoppers import analytics
from shoppers.analytics import Period, as_percent

__all__ = [
    "LIFETIME_PERIODS_MAX",
    "MARGIN_BPS_DEFAULT",
    "abc_xyz",
    "lifetime_value",
    "retention_rates",
]

LIFETIME_PERIODS_MAX = 20  # a segment that lost nobody is not worth infinitely much
MARGIN_BPS_DEFAULT = 10_000  # revenue lifetime value unless the caller states its margin
BPS = 10_000
CENTI = 100


def rounded(value: Fraction) -> int:
    """Half away from zero."""
    magnitude = (abs(value.numerator) * 2 + value.denominator) // (value.denominator * 2)
    return magnitude if value >= 0 else -magnitude


def _crr(at_start: int, at_end: int, new: int) -> Fraction | None:
    assert 0 <= new <= at_end, (new, at_end)
    return None if at_start == 0 else Fraction(at_end - new, at_start)


def _kept(count: int, partner_id: int | None) -> int | None:
    """A count as released: the operator sees all; a partner, groups of K_ANONYMITY_MIN+."""
    return count if partner_id is None or count >= K_ANONYMITY_MIN else None


async def retention_rates(conn: Conn, when: Period, *, partner_id: int | None) -> RetentionRates:
    rows = await conn.fetch(
        q.RETENTION_BY_PARTNER, *when, partner_id, timeout=analytics.QUERY_TIMEOUT_S
    )
    out = []
    if partner_id is None:
        network = await analytics.retention(conn, when)
        out.append(
            RetentionRateRow(
                partner_id=None,
                shoppers_at_start=network.shoppers_at_start,
                shoppers_at_end=network.shoppers_at_end,
                new_shoppers=network.new_shoppers,
                retention_rate_bps=network.retention_rate_bps,
                retention_rate=network.retention_rate,
            )
        )
    for row in rows:
        s, e, n = int(row["at_start"]), int(row["at_end"]), int(row["new_in_period"])
        released = _kept(min(s, e), partner_id) is not None
        crr = _crr(s, e, n) if released else None
        bps = None if crr is None else rounded(crr * 100 * 100)
        out.append(
            RetentionRateRow(
                partner_id=row["partner_id"],
                shoppers_at_start=s if released else None,
                shoppers_at_end=e if released else None,
                new_shoppers=n if released else None,
                retention_rate_bps=bps,
                retention_rate=as_percent(bps),
            )
        )
    return RetentionRates(
        period_start=when[0],
        period_end=when[1],
        k_min=None if partner_id is None else K_ANONYMITY_MIN,
        rows=out,
    )


async def lifetime_value(
    conn: Conn, when: Period, *, partner_id: int | None, margin_bps: int
) -> LifetimeValues:
    assert 0 < margin_bps <= BPS, margin_bps  # the route bounds it
    rows = await conn.fetch(
        q.LIFETIME_VALUE,
        *when,
        partner_id,
        partner_id is not None,  # a partner sees network segments of consenting shoppers only
        timeout=analytics.QUERY_TIMEOUT_S,
    )
    return LifetimeValues(
        period_start=when[0],
        period_end=when[1],
        margin_bps=margin_bps,
        lifetime_periods_max=LIFETIME_PERIODS_MAX,
        k_min=None if partner_id is None else K_ANONYMITY_MIN,
        rows=[_lifetime_row(row, partner_id, margin_bps) for row in rows],
    )


def _lifetime_row(row: Any, partner_id: int | None, margin_bps: int) -> LifetimeValueRow:
    s, e, n = int(row["at_start"]), int(row["at_end"]), int(row["new_in_period"])
    purchases, spend = int(row["purchases"]), int(row["spend_minor"])
    if _kept(min(s, e), partner_id) is None:
        return LifetimeValueRow(
            segment=row["segment"], shoppers_at_start=None, shoppers_at_end=None,
            new_shoppers=None, purchases=None, spend_minor=None, retention_rate_bps=None,
            margin_per_purchase_minor=None, purchases_per_shopper_centi=None,
            expected_lifetime_periods_centi=None, lifetime_capped=False,
            lifetime_value_minor=None,
        )  # fmt: skip
    crr = _crr(s, e, n)
    lifetime, capped = _lifetime(crr)
    margin = None if purchases == 0 else Fraction(spend * margin_bps, purchases * BPS)
    frequency = None if e == 0 else Fraction(purchases, e)
    value = None if margin is None or frequency is None else margin * frequency * lifetime
    return LifetimeValueRow(
        segment=row["segment"],
        shoppers_at_start=s,
        shoppers_at_end=e,
        new_shoppers=n,
        purchases=purchases,
        spend_minor=spend,
        retention_rate_bps=None if crr is None else rounded(crr * 100 * 100),
        margin_per_purchase_minor=None if margin is None else rounded(margin),
        purchases_per_shopper_centi=None if frequency is None else rounded(frequency * CENTI),
        expected_lifetime_periods_centi=rounded(lifetime * CENTI),
        lifetime_capped=capped,
        lifetime_value_minor=None if value is None else rounded(value),
    )


def _lifetime(crr: Fraction | None) -> tuple[Fraction, bool]:
    """Expected lifetime in periods: 1 / churn, churn = 1 - CRR; capped (a segment with no
    shopper before the period, or that lost none, has no observed churn)."""
    cap = Fraction(LIFETIME_PERIODS_MAX)
    if crr is None or crr >= 1:
        return cap, True
    lifetime = 1 / (1 - crr)
    return (cap, True) if lifetime > cap else (lifetime, False)


async def abc_xyz(conn: Conn, when: Period, *, partner_id: int | None) -> AbcXyz:
    rows = await conn.fetch(q.ABC_XYZ, *when, partner_id, timeout=analytics.QUERY_TIMEOUT_S)
    by_cell = {(r["abc"], r["xyz"]): r for r in rows}
    cells = []
    for abc in "ABC":
        for xyz in "XYZ":
            row = by_cell.get((abc, xyz))
            shoppers = 0 if row is None else int(row["shoppers"])
            spend = 0 if row is None else int(row["spend_minor"])
            released = _kept(shoppers, partner_id) is not None
            cells.append(
                AbcXyzCell(
                    abc=abc,
                    xyz=xyz,
                    shoppers=shoppers if released else None,
                    spend_minor=spend if released else None,
                )
            )
    months = await conn.fetchval(q.PERIOD_MONTHS, *when)
    return AbcXyz(
        period_start=when[0],
        period_end=when[1],
        months=int(months),
        k_min=None if partner_id is None else K_ANONYMITY_MIN,
        rows=cells,
    )
