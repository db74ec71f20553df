"""The integer arithmetic of a membership: its terms on the calendar, commissions, the
prorated refund and the benefit's extra points. Pure functions, unit-tested on their own.

- A term is 1 (monthly) or 12 (yearly) calendar months. Period k runs from
  start + k x term to start + (k + 1) x term, always counted from the start, so a 31 January
  start does not drift to the 28th after February (a day past a month's end is clamped).
- commission = floor(fee x commission_bps / 10_000): the seller keeps it.
- refund = floor(fee x remaining_whole_days / term_days), where term_days is the period's
  length in whole days and remaining_whole_days = floor((period_end - now) / 1 day): a day
  already begun is not refunded and the floor is in the network's favour (never more than
  the unused share). The seller's commission is re-cut on what was kept:
  commission_returned = commission - floor((fee - refund) x commission_bps / 10_000).
- extra points of a purchase = floor(base x (earn_multiplier_bps - 10_000) / 10_000).
"""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from typing import Literal

BPS_ONE = 10_000
DAY = timedelta(days=1)
MONTHS_BY_TERM: dict[str, int] = {"monthly": 1, "yearly": 12}

Term = Literal["monthly", "yearly"]


def add_months(moment: datetime, months: int) -> datetime:
    """`moment` plus calendar months, the day clamped to the target month's last day."""
    assert months >= 0, months
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def period_bounds(started_at: datetime, term: Term, period_no: int) -> tuple[datetime, datetime]:
    months = MONTHS_BY_TERM[term]
    return (
        add_months(started_at, period_no * months),
        add_months(started_at, (period_no + 1) * months),
    )


def commission_minor(fee_minor: int, commission_bps: int) -> int:
    assert fee_minor >= 0, fee_minor
    assert 0 <= commission_bps <= BPS_ONE, commission_bps
    return fee_minor * commission_bps // BPS_ONE


def whole_days(span: timedelta) -> int:
    return max(0, span // DAY)


def refund_minor(
    fee_minor: int, *, period_start: datetime, period_end: datetime, now: datetime
) -> int:
    """The prorated refund of a period's fee, cancelled at `now` (see the module's rule)."""
    term_days = whole_days(period_end - period_start)
    assert term_days > 0, (period_start, period_end)
    remaining_days = min(term_days, whole_days(period_end - now))
    return fee_minor * remaining_days // term_days


def commission_returned_minor(fee_minor: int, refund: int, commission_bps: int) -> int:
    """What the seller gives back of its commission when `refund` of `fee_minor` is refunded."""
    assert 0 <= refund <= fee_minor, (refund, fee_minor)
    kept = commission_minor(fee_minor - refund, commission_bps)
    returned = commission_minor(fee_minor, commission_bps) - kept
    assert 0 <= returned <= refund, (returned, refund)
    return returned


def extra_points(base_points: int, earn_multiplier_bps: int) -> int:
    return max(0, base_points * (earn_multiplier_bps - BPS_ONE) // BPS_ONE)
