"""A refund takes back the network-paid campaign points of its purchase, on real PostgreSQL:
all of them on a whole refund, the same floored share on a partial one, through the ledger
(marketing is credited back), once under retries; the referral bonus stays (it rewards
bringing the friend, not the basket)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import asyncpg
import pytest

from contracts.partners import PurchaseResult, RedemptionRequest, RefundRequest, RefundResult
from ledger import service as ledger
from ledger.verify import verify
from partners import operations
from partners.errors import PartnerRefConflict
from shoppers import referrals
from shoppers.referrals import FRIEND_BONUS_POINTS, REFERRER_BONUS_POINTS
from tests.support import program

ISSUE_PRICE_MICROS = 10_000  # tests.support.program's partners
MARKETING = ledger.network_account("marketing")
_refs = itertools.count(1)


@pytest.fixture(autouse=True)
async def no_running_campaigns(pool: asyncpg.Pool) -> None:
    await program.end_all_campaigns(pool)


@pytest.fixture(scope="module")
async def wide_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(database_url, min_size=5, max_size=10)
    assert created is not None
    yield created
    await asyncio.wait_for(created.close(), timeout=10)


@pytest.fixture(scope="module")
async def shop(pool: asyncpg.Pool) -> int:
    return await program.partner(pool, "netrefund")  # 1 point per 1.00


async def purchase_ref(pool: asyncpg.Pool, result: PurchaseResult) -> str:
    ref: str = await pool.fetchval(
        "SELECT partner_ref FROM partner_transactions WHERE id = $1::uuid", result.transaction_id
    )
    return ref


async def refund(
    pool: asyncpg.Pool,
    partner_id: int,
    original_ref: str,
    *,
    amount_minor: int | None = None,
    points: int | None = None,
    ref: str | None = None,
) -> RefundResult:
    ref = ref or f"nr-{next(_refs)}"
    request = RefundRequest(
        partner_ref=ref,
        original_partner_ref=original_ref,
        amount_minor=amount_minor,
        points=points,
    )
    async with pool.acquire() as conn, conn.transaction():
        return await operations.refund(conn, partner_id, request, idempotency_key=ref)


async def balances(pool: asyncpg.Pool, partner_id: int) -> tuple[int, int]:
    """(network:marketing, the partner's settlement account), exact reads."""
    async with pool.acquire() as conn:
        return (
            await ledger.balance(conn, MARKETING),
            await ledger.balance(conn, ledger.settlement_account(partner_id)),
        )


async def assert_ledger_consistent(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        assert await verify(conn) == []


async def test_a_whole_refund_takes_back_the_network_campaign_points_to_marketing(
    pool: asyncpg.Pool, shop: int
) -> None:
    await program.campaign(pool, None, bonus_points=30)
    holder = await program.shopper(pool, shop)
    marketing_before, partner_before = await balances(pool, shop)
    bought = await program.buy(pool, shop, holder.card_number, 5_000)
    assert bought.points_earned == 80  # 50 base (partner) + 30 network campaign (marketing)
    assert await balances(pool, shop) == (
        marketing_before + 30 * ISSUE_PRICE_MICROS,
        partner_before + 50 * ISSUE_PRICE_MICROS,
    )

    refunded = await refund(pool, shop, await purchase_ref(pool, bought))

    assert (refunded.points_refunded, refunded.network_points_refunded) == (50, 30)
    assert refunded.balance == 0
    assert await program.balance(pool, holder.card_number) == 0
    assert await balances(pool, shop) == (marketing_before, partner_before)
    await assert_ledger_consistent(pool)


async def test_partial_refunds_take_a_floored_share_that_adds_up_on_the_whole(
    pool: asyncpg.Pool, shop: int
) -> None:
    await program.campaign(pool, None, bonus_points=25)
    holder = await program.shopper(pool, shop)
    marketing_before, _ = await balances(pool, shop)
    bought = await program.buy(pool, shop, holder.card_number, 1_000)  # 10 base + 25 network
    original = await purchase_ref(pool, bought)

    first = await refund(pool, shop, original, amount_minor=333)
    second = await refund(pool, shop, original, amount_minor=333)
    rest = await refund(pool, shop, original)

    # Cumulative shares: floor(25 x 333 / 1000) = 8, floor(25 x 666 / 1000) = 16, then 25.
    assert [r.network_points_refunded for r in (first, second, rest)] == [8, 8, 9]
    assert [r.points_refunded for r in (first, second, rest)] == [3, 3, 4]
    assert [r.balance for r in (first, second, rest)] == [24, 13, 0]
    assert (await balances(pool, shop))[0] == marketing_before
    await assert_ledger_consistent(pool)


async def test_a_refund_in_points_takes_the_same_share_of_the_network_points(
    pool: asyncpg.Pool, shop: int
) -> None:
    await program.campaign(pool, None, multiplier_bps=30_000)  # 2.0x extra on the base
    holder = await program.shopper(pool, shop)
    bought = await program.buy(pool, shop, holder.card_number, 4_000)  # 40 base + 80 network
    refunded = await refund(pool, shop, await purchase_ref(pool, bought), points=10)
    assert (refunded.points_refunded, refunded.network_points_refunded) == (10, 20)
    assert refunded.balance == 90
    await assert_ledger_consistent(pool)


async def test_network_points_already_spent_are_clawed_back_into_points_debt(
    pool: asyncpg.Pool, shop: int
) -> None:
    await program.campaign(pool, None, bonus_points=40)
    holder = await program.shopper(pool, shop)
    marketing_before, _ = await balances(pool, shop)
    bought = await program.buy(pool, shop, holder.card_number, 2_000)  # 20 base + 40 network
    async with pool.acquire() as conn, conn.transaction():
        await operations.redeem(
            conn,
            shop,
            RedemptionRequest(partner_ref="nr-spend", card_number=holder.card_number, points=60),
            idempotency_key="nr-spend",
        )

    refunded = await refund(pool, shop, await purchase_ref(pool, bought))

    assert (refunded.points_refunded, refunded.network_points_refunded) == (20, 40)
    assert refunded.balance == -60  # in debt: the next earns repay it first
    assert (await balances(pool, shop))[0] == marketing_before
    await assert_ledger_consistent(pool)


async def test_concurrent_retries_of_one_refund_take_the_network_points_once(
    wide_pool: asyncpg.Pool, shop: int
) -> None:
    await program.campaign(wide_pool, None, bonus_points=10)
    holder = await program.shopper(wide_pool, shop)
    marketing_before, _ = await balances(wide_pool, shop)
    bought = await program.buy(wide_pool, shop, holder.card_number, 3_000)  # 30 + 10
    original = await purchase_ref(wide_pool, bought)

    results = await asyncio.gather(
        *(refund(wide_pool, shop, original, amount_minor=1_500, ref="nr-retry") for _ in range(8)),
        return_exceptions=True,
    )

    done = [r for r in results if isinstance(r, RefundResult)]
    assert len(done) == 1, results
    assert all(isinstance(r, PartnerRefConflict) for r in results if r not in done), results
    assert (done[0].points_refunded, done[0].network_points_refunded) == (15, 5)
    assert await program.balance(wide_pool, holder.card_number) == 20
    assert (await balances(wide_pool, shop))[0] == marketing_before + 5 * ISSUE_PRICE_MICROS
    await assert_ledger_consistent(wide_pool)


async def test_the_referral_bonus_is_not_taken_back_by_a_refund(
    pool: asyncpg.Pool, shop: int
) -> None:
    referrer, friend = await program.shopper(pool, shop), await program.shopper(pool, shop)
    async with pool.acquire() as conn, conn.transaction():
        code = await referrals.code_for(conn, referrer.shopper_id)
        await referrals.register(conn, referred_shopper_id=friend.shopper_id, code=code)
    bought = await program.buy(pool, shop, friend.card_number, 5_000)
    assert ("referral", FRIEND_BONUS_POINTS) in [(i.kind, i.points) for i in bought.breakdown]

    refunded = await refund(pool, shop, await purchase_ref(pool, bought))

    assert (refunded.points_refunded, refunded.network_points_refunded) == (50, 0)
    assert await program.balance(pool, friend.card_number) == FRIEND_BONUS_POINTS
    assert await program.balance(pool, referrer.card_number) == REFERRER_BONUS_POINTS
    await assert_ledger_consistent(pool)
