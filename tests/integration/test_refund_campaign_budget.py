"""A refund gives a campaign back the budget of the campaign points it takes back, exactly, on
real PostgreSQL: whole and partial refunds, network (marketing-paid) and partner campaigns,
and the shopper's cap row goes down by the same points."""

from __future__ import annotations

import itertools

import asyncpg
import pytest

from contracts.partners import PurchaseResult, RefundRequest
from ledger.verify import verify
from partners import campaign_returns, operations
from tests.integration.test_membership import plan, sell
from tests.support import program

_refs = itertools.count(1)


@pytest.fixture(autouse=True)
async def no_running_campaigns(pool: asyncpg.Pool) -> None:
    await program.end_all_campaigns(pool)


@pytest.fixture(scope="module")
async def shop(pool: asyncpg.Pool) -> int:
    return await program.partner(pool, "budgetback")  # 1 point per 1.00


async def refund(pool: asyncpg.Pool, shop: int, bought: PurchaseResult, amount: int) -> None:
    original = await pool.fetchval(
        "SELECT partner_ref FROM partner_transactions WHERE id = $1::uuid", bought.transaction_id
    )
    ref = f"cb-{next(_refs)}"
    request = RefundRequest(partner_ref=ref, original_partner_ref=original, amount_minor=amount)
    async with pool.acquire() as conn, conn.transaction():
        await operations.refund(conn, shop, request, idempotency_key=ref)


async def used(pool: asyncpg.Pool, campaign_id: int, shopper_id: int) -> tuple[int, int]:
    row = await pool.fetchrow(
        "SELECT c.awarded_points, a.points FROM campaigns c "
        "JOIN campaign_shopper_awards a ON a.campaign_id = c.id AND a.shopper_id = $2 "
        "WHERE c.id = $1",
        campaign_id,
        shopper_id,
    )
    assert row is not None
    return row["awarded_points"], row["points"]


async def test_partial_refunds_return_the_network_budget_exactly(
    pool: asyncpg.Pool, shop: int
) -> None:
    first = await program.campaign(pool, None, bonus_points=25)
    second = await program.campaign(pool, None, bonus_points=10)
    holder = await program.shopper(pool, shop)
    bought = await program.buy(pool, shop, holder.card_number, 1_000)  # 10 base + 35 network
    assert await used(pool, first.id, holder.shopper_id) == (25, 25)
    assert await used(pool, second.id, holder.shopper_id) == (10, 10)

    await refund(pool, shop, bought, 333)  # floor(35 x 333/1000) = 11 network points back
    assert await used(pool, first.id, holder.shopper_id) == (14, 14)
    assert await used(pool, second.id, holder.shopper_id) == (10, 10)
    await refund(pool, shop, bought, 333)  # cumulative floor(35 x 666/1000) = 23
    assert await used(pool, first.id, holder.shopper_id) == (2, 2)
    assert await used(pool, second.id, holder.shopper_id) == (10, 10)
    await refund(pool, shop, bought, 334)  # the rest: all 35
    assert await used(pool, first.id, holder.shopper_id) == (0, 0)
    assert await used(pool, second.id, holder.shopper_id) == (0, 0)

    # the audit rows add up to what each campaign had given
    returned = await pool.fetch(
        "SELECT campaign_id, sum(points)::bigint AS points FROM campaign_budget_returns "
        "WHERE shopper_id = $1 GROUP BY campaign_id ORDER BY campaign_id",
        holder.shopper_id,
    )
    assert [(r["campaign_id"], r["points"]) for r in returned] == [(first.id, 25), (second.id, 10)]
    network_back = await pool.fetchval(
        "SELECT sum(network_points) FROM partner_transactions "
        "WHERE kind = 'refund' AND shopper_id = $1",
        holder.shopper_id,
    )
    assert network_back == 35
    async with pool.acquire() as conn:
        assert await verify(conn) == []


async def test_a_partner_campaign_gets_its_share_of_the_partner_points_back(
    pool: asyncpg.Pool, shop: int
) -> None:
    bonus = await program.campaign(pool, shop, bonus_points=30, budget_points=100)
    holder = await program.shopper(pool, shop)
    bought = await program.buy(pool, shop, holder.card_number, 1_000)  # 10 base + 30 partner
    assert bought.points_earned == 40
    assert await used(pool, bonus.id, holder.shopper_id) == (30, 30)

    await refund(pool, shop, bought, 500)  # 20 of 40 partner points: 15 of the campaign's 30
    assert await used(pool, bonus.id, holder.shopper_id) == (15, 15)
    await refund(pool, shop, bought, 500)
    assert await used(pool, bonus.id, holder.shopper_id) == (0, 0)
    async with pool.acquire() as conn:
        assert await verify(conn) == []


def test_the_allotment_adds_up_for_every_refund_sequence() -> None:
    items = [
        campaign_returns.CampaignItem(1, True, 7),
        campaign_returns.CampaignItem(2, False, 5),
        campaign_returns.CampaignItem(3, True, 4),
    ]
    partner_steps, network_steps = [0, 3, 3, 9, 12], [0, 1, 6, 6, 11]
    total: dict[int, int] = {}
    for i in range(1, len(partner_steps)):
        for r in campaign_returns.due(
            items,
            purchase_points=12,
            partner_before=partner_steps[i - 1],
            partner_after=partner_steps[i],
            network_before=network_steps[i - 1],
            network_after=network_steps[i],
        ):
            total[r.campaign_id] = total.get(r.campaign_id, 0) + r.points
    assert total == {1: 7, 2: 5, 3: 4}


async def test_a_membership_bonus_comes_after_the_campaigns_in_the_network_share(
    pool: asyncpg.Pool, shop: int
) -> None:
    plus = await plan(pool, code=f"plus{next(_refs)}", multiplier_bps=15_000)
    network = await program.campaign(pool, None, bonus_points=20)
    holder = await program.shopper(pool, shop)
    await sell(pool, shop, holder.card_number, plus)
    bought = await program.buy(pool, shop, holder.card_number, 1_000)
    network_points = await pool.fetchval(
        "SELECT network_points FROM partner_transactions WHERE id = $1::uuid",
        bought.transaction_id,
    )
    assert network_points == 25  # 20 campaign + 5 membership bonus (1.5 x the 10 base)
    assert await used(pool, network.id, holder.shopper_id) == (20, 20)

    await refund(pool, shop, bought, 500)  # floor(25 x 1/2) = 12 network points: campaign first
    assert await used(pool, network.id, holder.shopper_id) == (8, 8)
    await refund(pool, shop, bought, 400)  # cumulative floor(25 x 9/10) = 22: 20 campaign + 2
    assert await used(pool, network.id, holder.shopper_id) == (0, 0)
    await refund(pool, shop, bought, 100)
    assert await used(pool, network.id, holder.shopper_id) == (0, 0)
    async with pool.acquire() as conn:
        assert await verify(conn) == []
