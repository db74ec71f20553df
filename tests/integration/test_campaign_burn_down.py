"""A campaign's budget burn-down on real PostgreSQL: awards on their purchase's UTC day, budget
given back on the refund's day, every day from the start to min(stop, today) present with the
exact budget left at its end, and the last day equal to the campaign's own awarded points."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta

import asyncpg
import pytest

from contracts.campaigns import BurnDownDay, Campaign
from contracts.partners import PurchaseResult, RefundRequest
from partners import campaign_burn_down, operations
from partners.errors import NotFound
from tests.support import program

_refs = itertools.count(1)
TODAY = datetime.now(UTC).date()  # the series' today, passed explicitly: midnight cannot move it


@pytest.fixture(autouse=True)
async def no_running_campaigns(pool: asyncpg.Pool) -> None:
    await program.end_all_campaigns(pool)


@pytest.fixture(scope="module")
async def shop(pool: asyncpg.Pool) -> int:
    return await program.partner(pool, "burndown")  # 1 point per 1.00


def at(days_ago: int, hour: int) -> datetime:
    return datetime.combine(TODAY - timedelta(days=days_ago), time(hour), tzinfo=UTC)


async def dated(pool: asyncpg.Pool, transaction_id: str, moment: datetime) -> None:
    """Move a recorded transaction to another time: the test's way to act on past days."""
    await pool.execute(
        "UPDATE partner_transactions SET created_at = $2 WHERE id = $1::uuid",
        transaction_id,
        moment,
    )


async def refund(pool: asyncpg.Pool, shop: int, bought: PurchaseResult, amount: int) -> str:
    original = await pool.fetchval(
        "SELECT partner_ref FROM partner_transactions WHERE id = $1::uuid", bought.transaction_id
    )
    ref = f"bd-{next(_refs)}"
    request = RefundRequest(partner_ref=ref, original_partner_ref=original, amount_minor=amount)
    async with pool.acquire() as conn, conn.transaction():
        await operations.refund(conn, shop, request, idempotency_key=ref)
    refund_id: str = await pool.fetchval(
        "SELECT id::text FROM partner_transactions WHERE partner_id = $1 AND partner_ref = $2",
        shop,
        ref,
    )
    return refund_id


async def burn_down(
    pool: asyncpg.Pool, campaign_id: int, *, today: date = TODAY
) -> list[BurnDownDay]:
    async with pool.acquire() as conn, conn.transaction():
        found = await campaign_burn_down.budget_burn_down(
            conn, campaign_id, partner_id=None, today=today
        )
    return found.days


async def network_campaign(pool: asyncpg.Pool, campaign_id: int) -> Campaign:
    async with pool.acquire() as conn, conn.transaction():
        return await operations.get_campaign(conn, None, campaign_id)


async def test_awards_and_a_refund_on_different_days_leave_exact_budgets(
    pool: asyncpg.Pool, shop: int
) -> None:
    campaign = await program.campaign(
        pool, None, bonus_points=30, budget_points=1_000, starts_at=at(4, 6)
    )
    first = await program.shopper(pool, shop)
    second = await program.shopper(pool, shop)
    bought = await program.buy(pool, shop, first.card_number, 1_000)  # 10 base + 30 campaign
    await dated(pool, bought.transaction_id, at(3, 12))
    later = await program.buy(pool, shop, second.card_number, 2_000)
    await dated(pool, later.transaction_id, at(2, 23))
    refunded = await refund(pool, shop, bought, 500)  # floor(30 x 500/1000) = 15 back
    await dated(pool, refunded, at(1, 0))

    days = await burn_down(pool, campaign.id)
    assert [(d.day, d.awarded_points, d.returned_points, d.budget_left_points) for d in days] == [
        (TODAY - timedelta(days=4), 0, 0, 1_000),  # the start day: nothing yet
        (TODAY - timedelta(days=3), 30, 0, 970),
        (TODAY - timedelta(days=2), 30, 0, 940),
        (TODAY - timedelta(days=1), 0, 15, 955),
        (TODAY, 0, 0, 955),  # today, no activity, present
    ]
    found = await network_campaign(pool, campaign.id)
    assert found.budget_points - found.awarded_points == days[-1].budget_left_points

    # a today before the start of the activity cuts the series there
    assert [
        d.budget_left_points for d in await burn_down(pool, campaign.id, today=at(3, 0).date())
    ] == [
        1_000,
        970,
    ]


async def test_the_series_stops_when_the_campaign_stops_and_starts_when_it_starts(
    pool: asyncpg.Pool, shop: int
) -> None:
    ended = await program.campaign(pool, None, bonus_points=5, starts_at=at(2, 10))
    async with pool.acquire() as conn, conn.transaction():
        await operations.end_campaign(conn, None, ended.id)
    await pool.execute(
        "UPDATE campaigns SET ended_at = $2 WHERE id = $1", ended.id, at(1, 8)
    )  # ended yesterday morning
    assert [d.day for d in await burn_down(pool, ended.id)] == [
        TODAY - timedelta(days=2),
        TODAY - timedelta(days=1),
    ]

    upcoming = await program.campaign(
        pool,
        None,
        bonus_points=5,
        starts_at=datetime.now(UTC) + timedelta(days=2),
        ends_at=datetime.now(UTC) + timedelta(days=3),
    )
    assert await burn_down(pool, upcoming.id) == []  # it has not started: no day yet


async def test_an_unknown_or_partner_campaign_is_not_found(pool: asyncpg.Pool, shop: int) -> None:
    partner_campaign = await program.campaign(pool, shop, bonus_points=5)
    for campaign_id in (partner_campaign.id, 999_999):
        with pytest.raises(NotFound):
            await burn_down(pool, campaign_id)
