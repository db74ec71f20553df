"""Jinja filters: integers of money and points shown as people read them, times in UTC."""

from __future__ import annotations

from datetime import UTC, datetime

MICROS_PER_UNIT = 1_000_000
MINUS = "\u2212"  # the typographic minus: a negative amount reads as one
CENT_MICROS = 10_000  # two decimals unless the statement says otherwise


def money(micros: int | None, currency: str = "", minor_unit_micros: int = CENT_MICROS) -> str:
    """Micro-units to `EUR 1,234.56`, rounded toward zero to the minor unit (integers only)."""
    if micros is None:
        return "—"
    assert minor_unit_micros > 0, minor_unit_micros
    assert MICROS_PER_UNIT % minor_unit_micros == 0, minor_unit_micros
    sign = MINUS if micros < 0 else ""
    minor = abs(micros) // minor_unit_micros
    per_unit = MICROS_PER_UNIT // minor_unit_micros
    units, rest = divmod(minor, per_unit)
    decimals = len(str(per_unit)) - 1
    fraction = f".{rest:0{decimals}d}" if decimals else ""
    prefix = f"{currency} " if currency else ""
    return f"{prefix}{sign}{units:,}{fraction}"


def points(value: int | None) -> str:
    if value is None:
        return "—"
    return f"{value:,}".replace("-", MINUS)


def when(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def since(moment: datetime | None) -> str:
    """A period's start; the first period starts with the network itself."""
    return "the start" if moment is None else when(moment)


FILTERS = {"money": money, "points": points, "when": when, "since": since}
