"""Property, on real PostgreSQL: for random histories of earns, burns, refunds, closes and
payments, the statements of all periods add up to the partners' settlement balances, and the
rounded payments plus the last carried remainder account for every micro."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime
from typing import Any

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.db import Conn
from ledger import service as ledger
from ledger import settlement
from ledger.errors import LedgerError

EXAMPLES_MAX = 20
STEPS_MAX = 25
PARTNERS = 3
SHOPPERS = 3

_ids = itertools.count(50_000)
_keys = itertools.count()

earns = st.tuples(
    st.just("earn"),
    st.integers(0, PARTNERS - 1),
    st.integers(0, SHOPPERS - 1),
    st.integers(1, 500),
    st.integers(0, 9_999),
)
burns = st.tuples(
    st.just("burn"),
    st.integers(0, PARTNERS - 1),
    st.integers(0, SHOPPERS - 1),
    st.integers(1, 500),
    st.integers(0, 9_999),
)
refunds = st.tuples(st.just("refund"), st.integers(0, 50), st.integers(1, 200))
closes = st.tuples(st.just("close"))
payments = st.tuples(st.just("pay"))
histories = st.lists(st.one_of(earns, burns, refunds, closes, payments), max_size=STEPS_MAX)


def key() -> str:
    return f"prop:{next(_keys)}"


async def close(conn: Conn) -> None:
    await asyncio.sleep(0.002)
    moment = datetime.now(UTC)
    await settlement.close_period(conn, period_end=moment, closed_by="prop", now=moment)


async def pay_everything_final(conn: Conn, partners: list[int]) -> None:
    rows = await conn.fetch(
        "SELECT statement_id FROM settlement.statement WHERE partner_id = ANY($1::bigint[])"
        " AND state = 'draft' ORDER BY statement_id",
        partners,
    )
    for row in rows:
        await settlement.finalize_statement(conn, row["statement_id"], actor="prop")
        await settlement.mark_paid(conn, row["statement_id"], actor="prop")


async def apply(
    conn: Conn,
    step: tuple[Any, ...],
    partners: list[int],
    shoppers: list[int],
    earned: list[int],
) -> None:
    kind = step[0]
    try:
        async with conn.transaction():
            if kind == "earn":
                result = await ledger.earn(
                    conn,
                    idempotency_key=key(),
                    shopper_id=shoppers[step[2]],
                    partner_id=partners[step[1]],
                    points=step[3],
                    issue_price_micros=step[4],
                    expires_at=None,
                )
                earned.append(result.entry_id)
            elif kind == "burn":
                await ledger.burn(
                    conn,
                    idempotency_key=key(),
                    shopper_id=shoppers[step[2]],
                    partner_id=partners[step[1]],
                    points=step[3],
                    redemption_price_micros=step[4],
                )
            elif kind == "refund" and earned:
                await ledger.refund_earn(
                    conn,
                    idempotency_key=key(),
                    original_entry_id=earned[step[1] % len(earned)],
                    points=step[2],
                )
    except LedgerError:
        pass  # insufficient points, refund larger than what is left: a refused step
    if kind == "close":
        await close(conn)
    elif kind == "pay":
        await pay_everything_final(conn, partners)


@settings(
    max_examples=EXAMPLES_MAX,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories)
async def test_statements_of_all_periods_sum_to_the_settlement_balances(
    pool: asyncpg.Pool, history: list[tuple[Any, ...]]
) -> None:
    partners = [next(_ids) for _ in range(PARTNERS)]
    shoppers = [next(_ids) for _ in range(SHOPPERS)]
    earned: list[int] = []
    async with pool.acquire() as conn:
        for step in history:
            await apply(conn, step, partners, shoppers, earned)
        await close(conn)  # everything committed so far lands in some period
        for partner in partners:
            balance = await ledger.balance(conn, ledger.settlement_account(partner))
            rows = await conn.fetch(
                "SELECT * FROM settlement.statement WHERE partner_id = $1 ORDER BY period_id",
                partner,
            )
            moved = sum(r["closing_balance_micros"] - r["opening_balance_micros"] for r in rows)
            assert moved == balance
            if rows:
                assert rows[-1]["closing_balance_micros"] == balance
                settled = sum(r["payment_due_micros"] for r in rows)
                paid = -sum(r["payments_micros"] for r in rows)
                unpaid = settled - paid
                assert balance == rows[-1]["carried_out_micros"] + unpaid
                assert abs(rows[-1]["carried_out_micros"]) < rows[-1]["minor_unit_micros"]
            else:
                assert balance == 0
        assert await settlement.verify_settlements(conn) == []
