"""Pure rules of the ledger, shared by the SQL functions (mirrored there) and the tests' model.

The SQL in infra/migrations/0002_ledger.sql is what runs; these functions state the same rules
in Python so they can be unit-tested and used as the oracle of the stateful tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

MICROS_PER_UNIT = 1_000_000


@dataclass(frozen=True)
class FreeLot:
    """What allocation needs to know about a lot: its id, expiry and unreserved points."""

    lot_id: int
    expires_at: datetime | None
    free: int


def consumption_order(lots: Iterable[FreeLot]) -> list[FreeLot]:
    """Soonest expiry first, lots that never expire last, ties by lot id (oldest first)."""
    return sorted(
        lots, key=lambda lot: (lot.expires_at is None, lot.expires_at or datetime.min, lot.lot_id)
    )


def allocate(lots: Iterable[FreeLot], points: int) -> list[tuple[int, int]]:
    """Which lots give how many points to take `points`: [(lot_id, taken), ...].

    Takes as many as the lots hold when they hold fewer; callers check the total.
    """
    assert points >= 0, points
    taken: list[tuple[int, int]] = []
    rest = points
    for lot in consumption_order(lots):
        if rest == 0:
            break
        if lot.free <= 0:
            continue
        take = min(lot.free, rest)
        taken.append((lot.lot_id, take))
        rest -= take
    return taken


def debt_share(debt_points: int, debt_value_micros: int, repay_points: int) -> int:
    """Value of `repay_points` of a points debt: floor of the pro-rata share, and the whole
    remaining value on the repayment that clears the debt, so no micro is left behind."""
    assert debt_points >= 0, debt_points
    assert debt_value_micros >= 0, debt_value_micros
    if repay_points <= 0:
        return 0
    if repay_points >= debt_points:
        return debt_value_micros
    return debt_value_micros * repay_points // debt_points


def minor_units(amount_micros: int, *, minor_digits: int) -> tuple[int, int]:
    """Split an amount into what a statement pays (in the currency's minor unit, rounded toward
    zero) and the micro-units left on the account for the next period.

    >>> minor_units(1_234_567, minor_digits=2)
    (123, 4567)
    """
    assert 0 <= minor_digits <= 6, minor_digits
    micros_per_minor = MICROS_PER_UNIT // 10**minor_digits
    sign = -1 if amount_micros < 0 else 1
    paid_minor = sign * (abs(amount_micros) // micros_per_minor)
    left_micros = amount_micros - paid_minor * micros_per_minor
    return paid_minor, left_micros
