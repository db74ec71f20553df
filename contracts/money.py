"""Money units shared by every room: integer micro-units and each currency's minor unit."""

from __future__ import annotations

MICROS_PER_UNIT = 1_000_000
# ISO 4217 minor-unit exponents that differ from the usual 2.
MINOR_DIGITS_BY_CURRENCY = {"JPY": 0, "KRW": 0, "ISK": 0, "BHD": 3, "KWD": 3, "JOD": 3}
MINOR_DIGITS_DEFAULT = 2


def minor_unit_micros(currency: str) -> int:
    """Micro-units in one minor unit of `currency` (EUR: 10,000 micros per cent)."""
    digits = MINOR_DIGITS_BY_CURRENCY.get(currency, MINOR_DIGITS_DEFAULT)
    unit: int = MICROS_PER_UNIT // 10**digits
    return unit
