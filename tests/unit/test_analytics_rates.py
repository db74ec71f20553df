"""Rates are exact: basis points rounded half away from zero, matching Fraction arithmetic."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from shoppers import analytics


def _reference_bps(numerator: int, denominator: int) -> int:
    exact = Fraction(numerator * 10_000, denominator)
    magnitude = abs(exact)
    rounded = int(magnitude) + (1 if magnitude - int(magnitude) >= Fraction(1, 2) else 0)
    return rounded if exact >= 0 else -rounded


@given(st.integers(-(10**9), 10**9), st.integers(1, 10**9))
def test_percent_bps_matches_exact_fractions(numerator: int, denominator: int) -> None:
    assert analytics.percent_bps(numerator, denominator) == _reference_bps(numerator, denominator)


@given(st.integers(-(10**7), 10**7))
def test_percent_strings_round_trip_to_basis_points(bps: int) -> None:
    text = analytics.as_percent(bps)
    assert text is not None
    assert round(Fraction(text) * 100) == bps
    assert len(text.split(".")[1]) == 2


def test_worked_examples() -> None:
    assert analytics.as_percent(analytics.percent_bps(4 - 2, 4)) == "50.00"  # retention
    assert analytics.as_percent(analytics.percent_bps(3 - 2, 7)) == "14.29"  # NPS
    assert analytics.as_percent(analytics.percent_bps(-1, 8)) == "-12.50"
