"""The settlement cycle as the operator configures it, on real PostgreSQL: validated, and a
change applies only to periods not yet closed (the next period starts at the last closed end;
closed periods keep their bounds)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from contracts.settlement import SettlementCycle, SettlementCycleUpdate
from ledger import settlement
from ledger.settlement import TimeZoneUnknown
from ledger.verify import verify

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")


def now() -> datetime:
    return datetime.now(UTC)


async def cycle(pool: asyncpg.Pool) -> SettlementCycle:
    async with pool.acquire() as conn:
        return await settlement.get_cycle(conn, now=now())


async def set_cycle(pool: asyncpg.Pool, frequency: str, time_zone: str) -> SettlementCycle:
    request = SettlementCycleUpdate(frequency=frequency, time_zone=time_zone)  # type: ignore[arg-type]
    async with pool.acquire() as conn:
        return await settlement.set_cycle(conn, request, actor="admin:test", now=now())


async def periods(pool: asyncpg.Pool) -> list[tuple[datetime | None, datetime]]:
    rows = await pool.fetch(
        "SELECT period_start, period_end FROM settlement.period ORDER BY period_end"
    )
    return [(r["period_start"], r["period_end"]) for r in rows]


async def test_default_is_daily_at_midnight_in_the_network_time_zone(pool: asyncpg.Pool) -> None:
    network_zone = await pool.fetchval("SELECT time_zone FROM network_settings")
    current = await cycle(pool)
    assert (current.frequency, current.time_zone, current.updated_by) == (
        "daily",
        network_zone,
        None,
    )
    assert current.next_period_start is None  # nothing closed yet
    local_end = current.next_period_end.astimezone(ZoneInfo(network_zone))
    assert (local_end.hour, local_end.minute) == (0, 0)


async def test_an_unknown_time_zone_is_refused_with_a_stable_code_and_changes_nothing(
    pool: asyncpg.Pool,
) -> None:
    before = await cycle(pool)
    for name in ("Mars/Olympus_Mons", "europe/paris ", "../etc/passwd", "UTC+2"):
        with pytest.raises(TimeZoneUnknown) as refused:
            await set_cycle(pool, "weekly", name)
        assert refused.value.code == "time_zone_unknown"
    assert await cycle(pool) == before
    assert await pool.fetchval("SELECT count(*) FROM settlement.cycle_change") == 0


async def test_a_change_never_recuts_a_closed_period_and_the_next_starts_at_its_end(
    pool: asyncpg.Pool,
) -> None:
    await set_cycle(pool, "daily", "UTC")
    first_end = datetime.combine(
        (now() - timedelta(days=40)).date(), datetime.min.time(), tzinfo=UTC
    )
    async with pool.acquire() as conn:
        await settlement.close_period(conn, period_end=first_end, closed_by="test", now=now())

    changed = await set_cycle(pool, "monthly", "Europe/Paris")
    assert (changed.frequency, changed.time_zone, changed.updated_by) == (
        "monthly",
        "Europe/Paris",
        "admin:test",
    )
    assert changed.next_period_start == first_end
    first_of_month = changed.next_period_end.astimezone(PARIS)
    assert (first_of_month.day, first_of_month.hour, first_of_month.minute) == (1, 0, 0)
    assert first_end < changed.next_period_end <= first_end + timedelta(days=32)

    closed_monthly = await settlement.close_due_periods(pool, now=now())
    assert closed_monthly >= 1  # 40 days hold at least one first of the month
    after_monthly = await periods(pool)
    assert after_monthly[0] == (None, first_end)  # the closed period keeps its bounds
    assert after_monthly[1] == (first_end, changed.next_period_end)
    for (_, end), (next_start, _) in itertools.pairwise(after_monthly):
        assert next_start == end  # contiguous: no gap, no overlap
    for _, end in after_monthly[1:]:
        local = end.astimezone(PARIS)
        assert (local.day, local.hour, local.minute) == (1, 0, 0)

    last_end = after_monthly[-1][1]
    daily = await set_cycle(pool, "daily", "America/New_York")
    assert daily.next_period_start == last_end
    assert await periods(pool) == after_monthly  # changing the cycle closes nothing
    await settlement.close_due_periods(pool, now=now())
    after_daily = await periods(pool)
    assert after_daily[: len(after_monthly)] == after_monthly
    assert after_daily[len(after_monthly)][0] == last_end
    for _, end in after_daily[len(after_monthly) :]:
        local = end.astimezone(NEW_YORK)
        assert (local.hour, local.minute) == (0, 0)
    assert after_daily[-1][1] <= now() < after_daily[-1][1] + timedelta(days=1, hours=2)

    history = await pool.fetch(
        "SELECT cadence, time_zone, previous_cadence, effective_from, changed_by"
        " FROM settlement.cycle_change ORDER BY change_id"
    )
    assert [(r["cadence"], r["time_zone"], r["previous_cadence"]) for r in history] == [
        ("daily", "UTC", "daily"),
        ("monthly", "Europe/Paris", "daily"),
        ("daily", "America/New_York", "monthly"),
    ]
    assert [r["effective_from"] for r in history] == [None, first_end, last_end]
    async with pool.acquire() as conn:
        assert await verify(conn) == []
        assert await settlement.verify_settlements(conn) == []
