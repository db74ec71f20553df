"""Paid membership on real PostgreSQL, through the service functions the routes call: renewal
and the monthly bonus happen exactly once even with two workers at once, an expired membership
stops the benefit, a quote shows the benefit, and random histories of sales, earns, burns,
cancellations and closes keep every ledger invariant and the membership money reconciled."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from contracts.membership import MembershipCancel, MembershipSale, PlanBenefits, PlanCreate
from contracts.partners import RedemptionRequest, RefundRequest
from ledger import settlement, verify
from partners import operations
from partners.membership import renewal, service, terms
from tests.support import program

_refs = itertools.count(1)
EXAMPLES_MAX = 15
STEPS_MAX = 14
SHOPPERS = 3


async def plan(
    pool: asyncpg.Pool, *, code: str, bonus: int = 50, multiplier_bps: int = 15_000, **extra: Any
) -> int:
    async with pool.acquire() as conn, conn.transaction():
        created = await service.create_plan(
            conn,
            PlanCreate(
                code=code,
                name=code.title(),
                price_minor=extra.pop("price_minor", 999),
                currency="EUR",
                term=extra.pop("term", "monthly"),
                benefits=PlanBenefits(
                    earn_multiplier_bps=multiplier_bps, monthly_bonus_points=bonus
                ),
                **extra,
            ),
            actor="test",
        )
    return created.id


async def sell(pool: asyncpg.Pool, partner_id: int, card: str, plan_id: int, **extra: Any) -> int:
    async with pool.acquire() as conn, conn.transaction():
        sold = await service.sell(
            conn,
            partner_id,
            MembershipSale(
                partner_ref=f"m-{next(_refs)}",
                card_number=card,
                plan_id=plan_id,
                price_minor=extra.pop("price_minor", 999),
                currency="EUR",
                **extra,
            ),
        )
    return sold.id


async def backdate(pool: asyncpg.Pool, membership_id: int, started_at: datetime) -> None:
    """Move a membership's start (its one period so far and its bonus clock) back in time."""
    row = await pool.fetchrow(
        "SELECT p.term FROM memberships m JOIN membership_plans p ON p.id = m.plan_id"
        " WHERE m.id = $1",
        membership_id,
    )
    assert row is not None
    start, end = terms.period_bounds(started_at, row["term"], 0)
    await pool.execute(
        "UPDATE memberships SET started_at = $2, period_start = $2, period_end = $3,"
        " bonus_next_at = CASE WHEN bonus_next_at IS NULL THEN NULL ELSE $4::timestamptz END"
        " WHERE id = $1",
        membership_id,
        start,
        end,
        terms.add_months(start, 1),
    )


async def books(pool: asyncpg.Pool) -> list[Any]:
    async with pool.acquire() as conn:
        return [*await verify.verify(conn), *await settlement.verify_settlements(conn)]


async def test_two_workers_renew_once_and_grant_the_next_month_once(pool: asyncpg.Pool) -> None:
    seller = await program.partner(pool, "renew-seller")
    holder = await program.shopper(pool, seller)
    membership_id = await sell(pool, seller, holder.card_number, await plan(pool, code="renew"))
    await backdate(pool, membership_id, datetime.now(UTC) - timedelta(days=31, minutes=5))

    now = datetime.now(UTC)
    await asyncio.gather(renewal.run(pool, now=now), renewal.run(pool, now=now))
    await renewal.run(pool, now=now)  # nothing left to do

    async with pool.acquire() as conn:
        m = await service.get(conn, seller, membership_id)
    assert m.period_no == 1
    assert m.status == "active"
    assert m.fees_minor == 2 * 999  # the sale and one renewal
    assert m.commission_minor == 2 * (999 * 1_000 // 10_000)  # the network's 10 %: 99 each
    assert m.bonus_points_granted == 2 * 50  # month 0 at the sale, month 1 once
    assert await program.balance(pool, holder.card_number) == 100
    assert await books(pool) == []


async def test_an_ended_membership_without_auto_renew_expires_and_stops_the_benefit(
    pool: asyncpg.Pool,
) -> None:
    seller = await program.partner(pool, "expire-seller")
    holder = await program.shopper(pool, seller)
    plan_id = await plan(pool, code="expire", bonus=0)
    membership_id = await sell(pool, seller, holder.card_number, plan_id, auto_renew=False)

    member = await program.buy(pool, seller, holder.card_number, 10_000)
    # base 100; 1.5x: floor(100 x 0.5) = 50 extra, paid by the network
    assert [(i.kind, i.points, i.paid_by) for i in member.breakdown] == [
        ("base", 100, "partner"),
        ("membership", 50, "network"),
    ]
    quoted = await program.quote(pool, seller, 10_000, card_number=holder.card_number)
    assert quoted.points == 150
    original_ref = await pool.fetchval(
        "SELECT partner_ref FROM partner_transactions WHERE id = $1::uuid", member.transaction_id
    )
    async with pool.acquire() as conn, conn.transaction():
        refunded = await operations.refund(
            conn,
            seller,
            RefundRequest(partner_ref=f"rf-{next(_refs)}", original_partner_ref=original_ref),
            idempotency_key=f"rf-{next(_refs)}",
        )
    # the whole purchase back: the partner's 100 and the network's 50 membership points
    assert (refunded.points_refunded, refunded.network_points_refunded) == (100, 50)
    assert refunded.balance == 0

    await backdate(pool, membership_id, datetime.now(UTC) - timedelta(days=32))
    assert await renewal.run(pool, now=datetime.now(UTC)) == 1
    async with pool.acquire() as conn:
        assert (await service.get(conn, seller, membership_id)).status == "expired"
    after = await program.buy(pool, seller, holder.card_number, 10_000)
    assert [i.kind for i in after.breakdown] == ["base"]
    assert await books(pool) == []


# ---- the property ------------------------------------------------------------------------------

steps = st.lists(
    st.one_of(
        st.tuples(st.just("sell"), st.integers(0, SHOPPERS - 1), st.booleans()),
        st.tuples(st.just("earn"), st.integers(0, SHOPPERS - 1), st.integers(0, 30_000)),
        st.tuples(st.just("burn"), st.integers(0, SHOPPERS - 1), st.integers(1, 200)),
        st.tuples(st.just("cancel"), st.integers(0, SHOPPERS - 1), st.integers(0, 40)),
        st.tuples(st.just("close")),
    ),
    min_size=1,
    max_size=STEPS_MAX,
)
_ids = itertools.count(1)


@settings(
    max_examples=EXAMPLES_MAX,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=steps)
async def test_random_sales_earns_and_cancellations_keep_the_books(
    pool: asyncpg.Pool, history: list[tuple[Any, ...]]
) -> None:
    n = next(_ids)
    seller = await program.partner(pool, f"prop-seller-{n}")
    grocer = await program.partner(pool, f"prop-grocer-{n}")
    plan_id = await plan(pool, code=f"prop-{n}", bonus=80, commission_bps=1_250)
    cards = [(await program.shopper(pool, seller)).card_number for _ in range(SHOPPERS)]
    active: dict[int, int] = {}  # shopper index -> membership id
    for step in history:
        kind, who = step[0], step[1] if len(step) > 1 else 0
        if kind == "sell" and who not in active:
            active[who] = await sell(pool, seller, cards[who], plan_id, auto_renew=step[2])
        elif kind == "earn":
            await program.buy(pool, grocer, cards[who], step[2])
        elif (
            kind == "burn" and (points := min(step[2], await program.balance(pool, cards[who]))) > 0
        ):
            async with pool.acquire() as conn, conn.transaction():
                ref = f"b-{next(_refs)}"
                await operations.redeem(
                    conn,
                    grocer,
                    RedemptionRequest(partner_ref=ref, card_number=cards[who], points=points),
                    idempotency_key=ref,
                )
        elif kind == "cancel" and who in active:
            if await cancel_after(pool, seller, active.pop(who), days=step[2]):
                event("a cancellation refunded")
        elif kind == "close":
            async with pool.acquire() as conn:
                now = datetime.now(UTC)
                await settlement.close_period(conn, period_end=now, closed_by="test", now=now)
        assert await books(pool) == []


async def cancel_after(
    pool: asyncpg.Pool, partner_id: int, membership_id: int, *, days: int
) -> int:
    """Cancel as if `days` (and a minute) had passed since the sale, checking the refund."""
    started = datetime.now(UTC) - timedelta(days=days, minutes=1)
    await backdate(pool, membership_id, started)
    before = await pool.fetchval("SELECT ledger.balance('network:membership_fees', NULL)")
    row = await pool.fetchrow(
        "SELECT period_start, period_end FROM memberships WHERE id = $1", membership_id
    )
    assert row is not None
    if row["period_end"] <= datetime.now(UTC):
        return 0  # the term is over: the renewal worker's business, not a cancellation's
    async with pool.acquire() as conn, conn.transaction():
        cancelled = await service.cancel(
            conn, partner_id, membership_id, MembershipCancel(), actor="test"
        )
    term_days = (row["period_end"] - row["period_start"]).days
    remaining_days = (row["period_end"] - datetime.now(UTC)).days
    # by hand: remaining whole days of the term's whole days, floored; a day may tick over
    # between the cancellation and this line, never two
    assert cancelled.refunded_minor in {
        999 * remaining_days // term_days,
        999 * (remaining_days + 1) // term_days,
    }
    after = await pool.fetchval("SELECT ledger.balance('network:membership_fees', NULL)")
    assert after - before == cancelled.refunded_minor * 10_000  # micros per EUR cent
    return 1


async def test_verify_reports_membership_money_that_no_longer_matches_the_ledger(
    pool: asyncpg.Pool,
) -> None:
    seller = await program.partner(pool, "tamper-seller")
    holder = await program.shopper(pool, seller)
    membership_id = await sell(pool, seller, holder.card_number, await plan(pool, code="tamper"))
    assert await books(pool) == []
    tamper = "UPDATE membership_charges SET fee_minor = fee_minor + $2 WHERE membership_id = $1"
    await pool.execute(tamper, membership_id, 1)
    try:
        async with pool.acquire() as conn:
            problems = await verify.verify(conn)
        assert {(p.invariant, p.check) for p in problems} == {(8, "membership_money")}
        assert {p.account for p in problems} == {None, "network:membership_fees"}
    finally:
        await pool.execute(tamper, membership_id, -1)
    assert await books(pool) == []
