"""Campaigns on real PostgreSQL: rewards and who pays, each condition, the time window, offers,
and budgets and per-shopper caps that 100 concurrent purchases never exceed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from contracts.partners import PurchaseResult
from ledger.verify import verify
from partners import campaigns
from partners.errors import CampaignInvalid
from tests.support import program

CONCURRENT_PURCHASES = 100


@pytest.fixture(autouse=True)
async def no_running_campaigns(pool: asyncpg.Pool) -> None:
    """Network campaigns apply at every partner: each test starts with none running."""
    await program.end_all_campaigns(pool)


@pytest.fixture(scope="module")
async def wide_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """Enough connections for the concurrent purchases to really overlap."""
    created = await asyncpg.create_pool(database_url, min_size=10, max_size=50)
    assert created is not None
    yield created
    await asyncio.wait_for(created.close(), timeout=10)


@pytest.fixture(scope="module")
async def shop(pool: asyncpg.Pool) -> int:
    return await program.partner(pool, "shop")  # 1 point per 1.00


def campaign_items(result: PurchaseResult) -> list[tuple[int | None, int, str]]:
    return [(i.campaign_id, i.points, i.paid_by) for i in result.breakdown if i.kind == "campaign"]


async def test_partner_campaign_is_in_the_partners_earn_and_network_campaign_paid_by_marketing(
    pool: asyncpg.Pool, shop: int
) -> None:
    holder = await program.shopper(pool, shop)
    double_fresh = await program.campaign(pool, shop, multiplier_bps=20_000, category="fresh")
    welcome = await program.campaign(pool, None, bonus_points=25)
    result = await program.buy(
        pool, shop, holder.card_number, 5_000, lines=[("fresh", 1_234), ("dry", 3_000)]
    )
    assert [(i.kind, i.points, i.paid_by) for i in result.breakdown] == [
        ("base", 50, "partner"),
        ("campaign", 12, "partner"),  # floor(12.34 points of fresh x 1.0 extra)
        ("campaign", 25, "network"),
    ]
    assert campaign_items(result) == [(double_fresh.id, 12, "partner"), (welcome.id, 25, "network")]
    assert result.points_earned == 87 == await program.balance(pool, holder.card_number)
    lots = await pool.fetch(
        "SELECT partner_id, points, origin FROM ledger.lot WHERE shopper_id = $1 ORDER BY lot_id",
        holder.shopper_id,
    )
    assert [(r["partner_id"], r["points"], r["origin"]) for r in lots] == [
        (shop, 62, "earn"),
        (None, 25, "goodwill"),
    ]
    assert (
        await pool.fetchval(
            "SELECT points FROM partner_transactions WHERE id = $1", result.transaction_id
        )
        == 62
    )
    async with pool.acquire() as conn:
        assert await verify(conn) == []


async def test_each_condition_admits_the_shopper_who_meets_it_and_no_other(
    pool: asyncpg.Pool, shop: int
) -> None:
    time_zone = await pool.fetchval("SELECT time_zone FROM network_settings")
    today = datetime.now(UTC).astimezone(ZoneInfo(time_zone))
    other_day = today.isoweekday() % 7 + 1
    other_month = today.month % 12 + 1
    cases: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
        "segment": ({"segment": "champions"}, {"segment": "champions"}),
        "tier": ({"tier": "silver"}, {"tier": "gold"}),
        "birthday": ({"birthday_month": True}, {"birth_month": today.month}),
        "weekday": ({"days_of_week": [today.isoweekday()]}, {}),
        "basket": ({"basket_min_minor": 2_000}, {}),
        "category": ({"category": "toys"}, {}),
    }
    for name, (conditions, setup) in cases.items():
        await program.end_all_campaigns(pool)
        yes = await program.shopper(pool, shop)
        no = await program.shopper(pool, shop)
        if "segment" in setup:
            await pool.execute(
                "INSERT INTO shopper_segments (shopper_id, segment) VALUES ($1, $2)",
                yes.shopper_id,
                setup["segment"],
            )
        if "tier" in setup:
            await pool.execute(
                "INSERT INTO shopper_tiers (shopper_id, tier, since, review_at) "
                "VALUES ($1, $2, now(), now() + interval '1 year')",
                yes.shopper_id,
                setup["tier"],
            )
        if "birth_month" in setup:
            await pool.execute(
                "UPDATE shoppers SET birth_date = $2 WHERE id = $1",
                yes.shopper_id,
                date(1990, today.month, 1),
            )
            await pool.execute(
                "UPDATE shoppers SET birth_date = $2 WHERE id = $1",
                no.shopper_id,
                date(1990, other_month, 1),
            )
        await program.campaign(pool, shop, bonus_points=7, **conditions)
        yes_lines = [("toys", 1_000)] if name == "category" else None
        no_lines = [("books", 1_000)] if name == "category" else None
        got = await program.buy(pool, shop, yes.card_number, 2_000, lines=yes_lines)
        missed = await program.buy(
            pool, shop, no.card_number, 1_999 if name == "basket" else 2_000, lines=no_lines
        )
        assert [p for _, p, _ in campaign_items(got)] == [7], name
        # the weekday holds for everyone today; another weekday is checked below
        assert campaign_items(missed) == ([] if name != "weekday" else campaign_items(got)), name
    # a weekday that is not today admits nobody
    await program.end_all_campaigns(pool)
    await program.campaign(pool, shop, bonus_points=7, days_of_week=[other_day])
    someone = await program.shopper(pool, shop)
    assert campaign_items(await program.buy(pool, shop, someone.card_number, 2_000)) == []


async def test_first_purchase_at_the_partner_is_rewarded_once(
    pool: asyncpg.Pool, shop: int
) -> None:
    elsewhere = await program.partner(pool, "elsewhere")
    holder = await program.shopper(pool, shop)
    await program.buy(pool, elsewhere, holder.card_number, 1_000)  # at another partner
    await program.campaign(pool, shop, bonus_points=30, first_purchase=True)
    first = await program.buy(pool, shop, holder.card_number, 1_000)
    second = await program.buy(pool, shop, holder.card_number, 1_000)
    assert [p for _, p, _ in campaign_items(first)] == [30]
    assert campaign_items(second) == []


async def test_only_running_campaigns_apply(pool: asyncpg.Pool, shop: int) -> None:
    now = datetime.now(UTC)
    await program.campaign(
        pool,
        shop,
        bonus_points=5,
        starts_at=now + timedelta(hours=1),
        ends_at=now + timedelta(days=1),
    )
    ended = await program.campaign(pool, shop, bonus_points=6)
    async with pool.acquire() as conn, conn.transaction():
        await campaigns.end(conn, shop, ended.id)
    holder = await program.shopper(pool, shop)
    assert campaign_items(await program.buy(pool, shop, holder.card_number, 1_000)) == []


async def test_a_campaign_is_refused_when_it_cannot_run(pool: asyncpg.Pool, shop: int) -> None:
    now = datetime.now(UTC)
    with pytest.raises(CampaignInvalid):
        await program.campaign(pool, shop, bonus_points=5, ends_at=now - timedelta(seconds=1))
    with pytest.raises(CampaignInvalid):
        await program.campaign(pool, shop, bonus_points=5, multiplier_bps=20_000)
    with pytest.raises(CampaignInvalid):
        await program.campaign(pool, shop, bonus_points=5, tier="platinum")


async def test_another_partners_campaign_is_not_found(pool: asyncpg.Pool, shop: int) -> None:
    other = await program.partner(pool, "other-shop")
    mine = await program.campaign(pool, shop, bonus_points=5)
    async with pool.acquire() as conn, conn.transaction():
        assert (await campaigns.get(conn, shop, mine.id)).id == mine.id
        for partner_id in (other, None):
            with pytest.raises(Exception, match="campaign not found"):
                await campaigns.get(conn, partner_id, mine.id)


async def test_offers_show_what_applies_to_the_shopper_now(pool: asyncpg.Pool, shop: int) -> None:
    holder = await program.shopper(pool, shop)
    plain = await program.campaign(pool, shop, multiplier_bps=15_000, category="fresh")
    network = await program.campaign(pool, None, bonus_points=9, per_shopper_cap_points=9)
    await program.campaign(pool, shop, bonus_points=3, segment="champions")  # not this shopper
    other = await program.partner(pool, "offers-elsewhere")
    theirs = await program.campaign(pool, other, bonus_points=4)
    async with pool.acquire() as conn, conn.transaction():
        here = await campaigns.offers_for_shopper(conn, holder.shopper_id, partner_id=shop)
        everywhere = await campaigns.offers_for_shopper(conn, holder.shopper_id)
    assert [o.campaign_id for o in here] == [plain.id, network.id]
    assert here[0].category == "fresh"
    assert here[0].reward_kind == "multiplier"
    assert [o.campaign_id for o in everywhere] == [plain.id, network.id, theirs.id]
    await program.buy(pool, shop, holder.card_number, 1_000)  # takes the network bonus: cap spent
    async with pool.acquire() as conn, conn.transaction():
        after = await campaigns.offers_for_shopper(conn, holder.shopper_id, partner_id=shop)
    assert [o.campaign_id for o in after] == [plain.id]


async def test_budget_is_never_exceeded_under_100_concurrent_purchases(
    pool: asyncpg.Pool, wide_pool: asyncpg.Pool, shop: int
) -> None:
    budget = 300
    bonus = 7
    shoppers = [await program.shopper(pool, shop) for _ in range(CONCURRENT_PURCHASES)]
    promo = await program.campaign(pool, None, bonus_points=bonus, budget_points=budget)
    results = await asyncio.gather(
        *(program.buy(wide_pool, shop, s.card_number, 1_000) for s in shoppers)
    )
    awarded = [p for r in results for _, p, _ in campaign_items(r)]
    assert sum(awarded) == budget
    # 42 full awards, then one partial award of what was left, then nothing
    assert sorted(awarded, reverse=True) == [bonus] * (budget // bonus) + [budget % bonus]
    row = await pool.fetchrow(
        "SELECT awarded_points, budget_points FROM campaigns WHERE id = $1", promo.id
    )
    assert row is not None
    assert row["awarded_points"] == row["budget_points"] == budget
    for holder, result in zip(shoppers, results, strict=True):
        assert result.points_earned == sum(i.points for i in result.breakdown)
        assert await program.balance(pool, holder.card_number) == result.points_earned
    async with pool.acquire() as conn:
        assert await verify(conn) == []


async def test_per_shopper_cap_is_never_exceeded_under_100_concurrent_purchases(
    pool: asyncpg.Pool, wide_pool: asyncpg.Pool, shop: int
) -> None:
    holder = await program.shopper(pool, shop)
    cap = 55
    promo = await program.campaign(pool, shop, bonus_points=10, per_shopper_cap_points=cap)
    results = await asyncio.gather(
        *(
            program.buy(wide_pool, shop, holder.card_number, 100)
            for _ in range(CONCURRENT_PURCHASES)
        )
    )
    awarded = [p for r in results for _, p, _ in campaign_items(r)]
    assert sum(awarded) == cap
    assert sorted(awarded, reverse=True) == [10] * 5 + [5]
    assert (
        await pool.fetchval(
            "SELECT points FROM campaign_shopper_awards WHERE shopper_id = $1 AND campaign_id = $2",
            holder.shopper_id,
            promo.id,
        )
        == cap
    )
    assert await program.balance(pool, holder.card_number) == sum(r.points_earned for r in results)
