"""The integer rules of a membership (partners/membership/terms.py), by hand and by property."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from partners.membership import terms


def test_periods_count_from_the_start_and_clamp_to_the_months_last_day() -> None:
    start = datetime(2027, 1, 31, 9, 30, tzinfo=UTC)
    assert terms.period_bounds(start, "monthly", 0) == (
        start,
        datetime(2027, 2, 28, 9, 30, tzinfo=UTC),
    )
    # no drift: the third period starts on the 31st again
    assert terms.period_bounds(start, "monthly", 2)[0] == datetime(2027, 3, 31, 9, 30, tzinfo=UTC)
    assert terms.period_bounds(start, "yearly", 1) == (
        datetime(2028, 1, 31, 9, 30, tzinfo=UTC),
        datetime(2029, 1, 31, 9, 30, tzinfo=UTC),
    )


def test_the_refund_is_the_remaining_whole_days_share_floored() -> None:
    start = datetime(2027, 4, 1, tzinfo=UTC)
    end = datetime(2027, 5, 1, tzinfo=UTC)  # 30 days
    # 10 days and 1 hour in: 19 whole days remain; 999 x 19 / 30 = 632.7 -> 632
    now = start + timedelta(days=10, hours=1)
    assert terms.refund_minor(999, period_start=start, period_end=end, now=now) == 632
    assert terms.refund_minor(999, period_start=start, period_end=end, now=start) == 999
    assert terms.refund_minor(999, period_start=start, period_end=end, now=end) == 0


def test_the_commission_is_recut_on_what_was_kept() -> None:
    # fee 1000 at 15 %: 150; refund 633 keeps 367, whose commission is floor(55.05) = 55
    assert terms.commission_minor(1_000, 1_500) == 150
    assert terms.commission_returned_minor(1_000, 633, 1_500) == 95


def test_extra_points_are_the_base_times_the_multiplier_above_one() -> None:
    assert terms.extra_points(101, 20_000) == 101
    assert terms.extra_points(101, 15_000) == 50  # floor(50.5)
    assert terms.extra_points(101, 10_000) == 0


@given(
    fee=st.integers(1, 10**9),
    share=st.fractions(0, 1, max_denominator=1_000),
    bps=st.integers(0, 10_000),
)
def test_commission_returned_never_exceeds_the_refund_nor_the_commission(
    fee: int, share: Fraction, bps: int
) -> None:
    refund = int(fee * share)
    returned = terms.commission_returned_minor(fee, refund, bps)
    assert 0 <= returned <= min(refund, terms.commission_minor(fee, bps))
    kept_commission = terms.commission_minor(fee, bps) - returned
    assert kept_commission == (fee - refund) * bps // 10_000
