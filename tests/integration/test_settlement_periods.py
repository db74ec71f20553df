"""Settlement on real PostgreSQL: hand-computed statements, rounding carried forward, exact
period assignment under concurrency, idempotent closes, payments through network:bank."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from contracts.settlement import Period, Statement
from infra.db import Conn
from ledger import service as ledger
from ledger import settlement
from ledger.settlement import PeriodEndBeforeLast, PeriodEndInFuture, StatementStateInvalid
from ledger.verify import verify

_ids = itertools.count(10_000)
_keys = itertools.count()


def new_id() -> int:
    return next(_ids)


def key() -> str:
    return f"settle-test:{next(_keys)}"


def now() -> datetime:
    return datetime.now(UTC)


async def earn(conn: Conn, shopper: int, partner: int, points: int, ip: int) -> int:
    result = await ledger.earn(
        conn,
        idempotency_key=key(),
        shopper_id=shopper,
        partner_id=partner,
        points=points,
        issue_price_micros=ip,
        expires_at=None,
    )
    return result.entry_id


async def burn(conn: Conn, shopper: int, partner: int, points: int, rp: int) -> int:
    result = await ledger.burn(
        conn,
        idempotency_key=key(),
        shopper_id=shopper,
        partner_id=partner,
        points=points,
        redemption_price_micros=rp,
    )
    return result.entry_id


async def close(conn: Conn) -> Period:
    # Give the clock a tick so each close ends strictly after the previous one.
    await asyncio.sleep(0.002)
    return await settlement.close_period(conn, period_end=now(), closed_by="test", now=now())


def statement_of(period: Period, partner: int) -> Statement:
    (found,) = [s for s in period.statements if s.partner_id == partner]
    return found


async def test_earn_at_a_and_burn_at_b_settle_to_hand_computed_amounts(
    pool: asyncpg.Pool,
) -> None:
    a, b, shopper = new_id(), new_id(), new_id()
    async with pool.acquire() as conn:
        await close(conn)  # a clean start: everything before belongs to earlier periods
        await earn(conn, shopper, a, 1_000, 5_000)  # A issues 1,000 points at 0.005 EUR
        await burn(conn, shopper, b, 600, 4_000)  # B redeems 600 at 0.004 EUR
        period = await close(conn)

        sa, sb = statement_of(period, a), statement_of(period, b)
        assert (sa.issued_count, sa.issued_points, sa.issued_micros) == (1, 1_000, 5_000_000)
        assert sa.opening_balance_micros == 0
        assert sa.closing_balance_micros == 5_000_000
        assert (sa.payer, sa.payment_minor, sa.payment_due_micros) == ("partner", 500, 5_000_000)
        assert (sb.redeemed_count, sb.redeemed_points, sb.redeemed_micros) == (1, 600, -2_400_000)
        assert (sb.payer, sb.payment_minor, sb.payment_due_micros) == ("network", 240, -2_400_000)
        assert sb.carried_out_micros == 0
        lines = {line.account: line.amount_micros for line in period.network_lines}
        # Deferred revenue: -5.00 issued, +3.00 consumed; margin: 3.00 - 2.40 = 0.60 earned.
        assert lines["network:deferred_revenue"] == -2_000_000
        assert lines["network:redemption_margin"] == -600_000
        moves = sum(s.closing_balance_micros - s.opening_balance_micros for s in period.statements)
        assert moves + sum(lines.values()) == 0
        assert await settlement.verify_settlements(conn) == []


async def test_rounding_remainders_carry_over_and_never_vanish(pool: asyncpg.Pool) -> None:
    partner, shopper = new_id(), new_id()
    async with pool.acquire() as conn:
        await close(conn)
        dues: list[int] = []
        carried: list[int] = []
        for points in (7, 2, 1):  # at 3,333 micros a point: 23,331 / 6,666 / 3,333 micros
            await earn(conn, shopper, partner, points, 3_333)
            statement = statement_of(await close(conn), partner)
            dues.append(statement.payment_due_micros)
            carried.append(statement.carried_out_micros)
        assert dues == [20_000, 0, 10_000]
        assert carried == [3_331, 9_997, 3_330]
        assert sum(dues) + carried[-1] == 10 * 3_333
        balance = await ledger.balance(conn, ledger.settlement_account(partner))
        assert balance == 10 * 3_333  # nothing paid yet: the ledger still holds it all


async def test_reclosing_a_period_is_a_no_op_returning_its_statements(pool: asyncpg.Pool) -> None:
    partner, shopper = new_id(), new_id()
    async with pool.acquire() as conn:
        await earn(conn, shopper, partner, 10, 1_000)
        first = await close(conn)
        again = await settlement.close_period(
            conn, period_end=first.period_end, closed_by="test", now=now()
        )
        assert first.created
        assert not again.created
        assert again.period_id == first.period_id
        assert again.statements == first.statements
        with pytest.raises(PeriodEndBeforeLast):
            await settlement.close_period(
                conn,
                period_end=first.period_end - timedelta(microseconds=1),
                closed_by="test",
                now=now(),
            )
        with pytest.raises(PeriodEndInFuture):
            await settlement.close_period(
                conn, period_end=now() + timedelta(hours=1), closed_by="test", now=now()
            )


async def test_concurrent_closes_of_one_period_create_it_once(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await close(conn)
    end = now()

    async def close_at(_: int) -> Period:
        async with pool.acquire() as conn:
            return await settlement.close_period(conn, period_end=end, closed_by="t", now=now())

    periods = await asyncio.gather(*(close_at(i) for i in range(6)))
    assert sum(p.created for p in periods) == 1
    assert len({p.period_id for p in periods}) == 1


async def test_an_entry_committed_after_a_close_lands_in_the_next_period(
    pool: asyncpg.Pool,
) -> None:
    partner, shopper = new_id(), new_id()
    async with pool.acquire() as conn:
        await close(conn)
    async with pool.acquire() as slow:
        tx = slow.transaction()
        await tx.start()
        entry_id = await earn(slow, shopper, partner, 5, 1_000)  # created_at: before the close
        async with pool.acquire() as conn:
            during = await close(conn)
        await tx.commit()
    async with pool.acquire() as conn:
        after = await close(conn)
        stamps = await conn.fetch(
            "SELECT period_id FROM settlement.entry_period WHERE entry_id = $1", entry_id
        )
    assert [r["period_id"] for r in stamps] == [after.period_id]
    assert all(s.partner_id != partner for s in during.statements)
    assert statement_of(after, partner).issued_micros == 5_000


async def test_entries_racing_closes_land_in_exactly_one_period(pool: asyncpg.Pool) -> None:
    partners = [new_id() for _ in range(3)]
    shoppers = [new_id() for _ in range(6)]
    async with pool.acquire() as conn:
        start = await close(conn)
    entry_ids: list[int] = []

    async def writer(n: int) -> None:
        for i in range(15):
            async with pool.acquire() as conn:
                entry_ids.append(
                    await earn(conn, shoppers[n], partners[i % 3], 1 + i, 1_000 + 7 * n)
                )

    async def closer() -> None:
        for _ in range(6):
            async with pool.acquire() as conn:
                await close(conn)

    await asyncio.gather(*(writer(n) for n in range(6)), closer())
    async with pool.acquire() as conn:
        await close(conn)
        rows = await conn.fetch(
            "SELECT entry_id, count(*) AS n FROM settlement.entry_period"
            " WHERE entry_id = ANY($1::bigint[]) GROUP BY entry_id",
            entry_ids,
        )
        assert len(rows) == len(entry_ids) == 90
        assert all(r["n"] == 1 for r in rows)
        for partner in partners:
            total = await conn.fetchval(
                "SELECT sum(closing_balance_micros - opening_balance_micros) FROM "
                "settlement.statement WHERE partner_id = $1 AND period_id > $2",
                partner,
                start.period_id,
            )
            assert total == await ledger.balance(conn, ledger.settlement_account(partner))
        assert await settlement.verify_settlements(conn) == []


async def test_paid_statements_move_money_through_the_bank_and_leave_the_remainder(
    pool: asyncpg.Pool,
) -> None:
    a, b, shopper = new_id(), new_id(), new_id()
    async with pool.acquire() as conn:
        await close(conn)
        bank_before = await ledger.balance(conn, ledger.network_account("bank"))
        await earn(conn, shopper, a, 333, 3_333)  # 1,109,889 micros: pays 1.10, carries 9,889
        await burn(conn, shopper, b, 101, 4_321)  # -436,421 micros: paid 0.43, carries -6,421
        period = await close(conn)
        sa, sb = statement_of(period, a), statement_of(period, b)
        with pytest.raises(StatementStateInvalid):
            await settlement.mark_paid(conn, sa.statement_id, actor="fin")  # still draft
        for s in (sa, sb):
            await settlement.finalize_statement(conn, s.statement_id, actor="fin")
            paid = await settlement.mark_paid(conn, s.statement_id, actor="fin")
            again = await settlement.mark_paid(conn, s.statement_id, actor="fin")
            assert paid.state == again.state == "paid"
            assert again.payment_entry_id == paid.payment_entry_id is not None
        assert await ledger.balance(conn, ledger.settlement_account(a)) == 9_889
        assert await ledger.balance(conn, ledger.settlement_account(b)) == -6_421
        bank_after = await ledger.balance(conn, ledger.network_account("bank"))
        assert bank_after - bank_before == 1_100_000 - 430_000
        # The next period shows the payments and opens on the unpaid closing balance.
        nxt = await close(conn)
        na = statement_of(nxt, a)
        assert na.opening_balance_micros == 1_109_889
        assert na.payments_micros == -1_100_000
        assert na.closing_balance_micros == 9_889
        assert na.carried_in_micros == 9_889
        assert na.payment_due_micros == 0
        assert await settlement.verify_settlements(conn) == []
        assert await verify(conn) == []


async def test_statement_figures_are_immutable(pool: asyncpg.Pool) -> None:
    partner, shopper = new_id(), new_id()
    async with pool.acquire() as conn:
        await earn(conn, shopper, partner, 3, 1_000)
        statement = statement_of(await close(conn), partner)
        with pytest.raises(asyncpg.PostgresError, match="immutable"):
            await conn.execute(
                "UPDATE settlement.statement SET issued_micros = 1 WHERE statement_id = $1",
                statement.statement_id,
            )
        with pytest.raises(asyncpg.PostgresError, match="immutable"):
            await conn.execute(
                "DELETE FROM settlement.statement WHERE statement_id = $1", statement.statement_id
            )


async def test_verify_names_a_statement_that_disagrees_with_the_journal(
    pool: asyncpg.Pool,
) -> None:
    partner, shopper = new_id(), new_id()
    async with pool.acquire() as conn:
        await earn(conn, shopper, partner, 3, 1_000)
        period = await close(conn)
        tx = conn.transaction()
        await tx.start()
        # Tamper behind the triggers' back (as a superuser could), then roll it back.
        await conn.execute("ALTER TABLE settlement.network_line DISABLE TRIGGER USER")
        await conn.execute(
            "UPDATE settlement.network_line SET amount_micros = amount_micros + 1"
            " WHERE period_id = $1",
            period.period_id,
        )
        problems = await settlement.verify_settlements(conn)
        await tx.rollback()
        assert any(f"period {period.period_id}:" in p for p in problems), problems
        assert await settlement.verify_settlements(conn) == []


def test_cycle_boundaries_are_local_midnights_across_dst() -> None:
    from zoneinfo import ZoneInfo

    paris = ZoneInfo("Europe/Paris")
    before_dst = datetime(2030, 3, 30, 12, 0, tzinfo=paris)  # DST starts 31 March 2030
    assert settlement.next_boundary(before_dst, "daily", paris) == datetime(
        2030, 3, 31, tzinfo=paris
    )
    after = settlement.next_boundary(datetime(2030, 3, 31, tzinfo=paris), "daily", paris)
    assert after == datetime(2030, 4, 1, tzinfo=paris)
    # Same-zone subtraction is wall-clock time in Python; the real length is 23 hours.
    assert after.astimezone(UTC) - datetime(2030, 3, 31, tzinfo=paris).astimezone(UTC) == (
        timedelta(hours=23)
    )
    assert settlement.next_boundary(before_dst, "monthly", paris) == datetime(
        2030, 4, 1, tzinfo=paris
    )
    assert settlement.latest_boundary(before_dst, "weekly", paris) == datetime(
        2030, 3, 25, tzinfo=paris
    )


async def test_the_worker_closes_nothing_before_the_next_boundary(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await close(conn)  # periods already end "now": the next cycle boundary is ahead
    assert await settlement.close_due_periods(pool, now=now()) == 0
    summary = await settlement.settle_until(pool, None, now=now())
    assert summary.closed_period_ids == ()
