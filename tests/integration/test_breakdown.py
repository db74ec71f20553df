"""Earn rules and the points breakdown on real PostgreSQL: category multipliers, exclusions,
minimum basket, tier bonus; the breakdown sums to the points posted; lines are stored."""

from __future__ import annotations

import asyncpg
import pytest

from contracts.partners import CategoryRule, EarnRulesUpdate
from ledger.verify import verify
from partners import operations
from partners.errors import LinesExceedAmount
from tests.support import program


async def rules(pool: asyncpg.Pool, partner_id: int, update: EarnRulesUpdate) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await operations.replace_earn_rules(conn, partner_id, update, actor="test")


@pytest.fixture(scope="module")
async def grocer(pool: asyncpg.Pool) -> int:
    partner_id = await program.partner(pool, "grocer")  # 1 point per 1.00
    await rules(
        pool,
        partner_id,
        EarnRulesUpdate(
            min_basket_minor=500,
            categories=[
                CategoryRule(category="fresh", multiplier_bps=30_000),
                CategoryRule(category="tobacco", excluded=True),
            ],
        ),
    )
    return partner_id


async def test_base_applies_multipliers_and_exclusions_and_sums_to_points_posted(
    pool: asyncpg.Pool, grocer: int
) -> None:
    holder = await program.shopper(pool, grocer)
    # fresh 10.00 at 3x = 30, tobacco 50.00 excluded = 0, dry 5.55 = 5.55, unlisted 4.45 = 4.45
    result = await program.buy(
        pool,
        grocer,
        holder.card_number,
        7_000,
        lines=[("fresh", 1_000), ("tobacco", 5_000), ("dry", 555)],
    )
    assert [(i.kind, i.points, i.paid_by) for i in result.breakdown] == [("base", 40, "partner")]
    assert result.points_earned == 40 == sum(i.points for i in result.breakdown)
    assert await program.balance(pool, holder.card_number) == 40 == result.balance
    lines = await pool.fetch(
        "SELECT line_no, category, amount_minor, shopper_id, partner_id FROM purchase_lines "
        "WHERE transaction_id = $1 ORDER BY line_no",
        result.transaction_id,
    )
    assert [(r["line_no"], r["category"], r["amount_minor"]) for r in lines] == [
        (0, "fresh", 1_000),
        (1, "tobacco", 5_000),
        (2, "dry", 555),
    ]
    assert {(r["shopper_id"], r["partner_id"]) for r in lines} == {(holder.shopper_id, grocer)}


async def test_a_basket_below_the_minimum_earns_nothing(pool: asyncpg.Pool, grocer: int) -> None:
    holder = await program.shopper(pool, grocer)
    result = await program.buy(pool, grocer, holder.card_number, 499)
    assert result.points_earned == 0
    assert [(i.kind, i.points) for i in result.breakdown] == [("base", 0)]
    assert await program.balance(pool, holder.card_number) == 0


async def test_lines_above_the_amount_are_refused_and_nothing_is_stored(
    pool: asyncpg.Pool, grocer: int
) -> None:
    holder = await program.shopper(pool, grocer)
    with pytest.raises(LinesExceedAmount):
        await program.buy(pool, grocer, holder.card_number, 1_000, lines=[("fresh", 1_001)])
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM purchase_lines WHERE shopper_id = $1", holder.shopper_id
        )
        == 0
    )


async def test_tier_bonus_is_floored_on_the_base_and_paid_by_the_partner(
    pool: asyncpg.Pool, grocer: int
) -> None:
    holder = await program.shopper(pool, grocer)
    await pool.execute(
        "INSERT INTO shopper_tiers (shopper_id, tier, since, review_at) "
        "VALUES ($1, 'gold', now(), now() + interval '1 year')",
        holder.shopper_id,
    )
    result = await program.buy(pool, grocer, holder.card_number, 1_099)  # base 10, gold 1.5x
    assert [(i.kind, i.points, i.paid_by) for i in result.breakdown] == [
        ("base", 10, "partner"),
        ("tier_bonus", 5, "partner"),
    ]
    assert result.points_earned == 15 == await program.balance(pool, holder.card_number)
    stored = await pool.fetchval(
        "SELECT points FROM partner_transactions WHERE id = $1", result.transaction_id
    )
    assert stored == 15  # the partner pays for base and tier bonus: a refund may take them back


async def test_a_quote_shows_the_breakdown_the_purchase_then_gets(
    pool: asyncpg.Pool, grocer: int
) -> None:
    holder = await program.shopper(pool, grocer)
    basket = [("fresh", 2_000), ("tobacco", 1_000)]
    quoted = await program.quote(pool, grocer, 5_000, card_number=holder.card_number, lines=basket)
    bought = await program.buy(pool, grocer, holder.card_number, 5_000, lines=basket)
    assert quoted.breakdown == bought.breakdown
    assert quoted.points == bought.points_earned == 60 + 20


async def test_without_lines_the_base_rate_is_unchanged(pool: asyncpg.Pool) -> None:
    partner_id = await program.partner(pool, "fuel", earn_points=3, earn_spend_minor=1_000)
    holder = await program.shopper(pool, partner_id)
    result = await program.buy(pool, partner_id, holder.card_number, 3_333)
    assert result.points_earned == 3_333 * 3 // 1_000
    async with pool.acquire() as conn:
        assert await verify(conn) == []
