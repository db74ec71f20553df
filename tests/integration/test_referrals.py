"""Referrals on real PostgreSQL: a stable code, no self-referral, no loops, referred once, and
both bonuses paid exactly once under concurrent qualifying purchases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from ledger.verify import verify
from shoppers import referrals
from shoppers.referrals import (
    FRIEND_BONUS_POINTS,
    QUALIFYING_PURCHASE_MINOR,
    REFERRER_BONUS_POINTS,
    ReferralCodeUnknown,
    ReferralNotAllowed,
)
from tests.support import program

CONCURRENT_PURCHASES = 100


@pytest.fixture(scope="module")
async def wide_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(database_url, min_size=10, max_size=50)
    assert created is not None
    yield created
    await asyncio.wait_for(created.close(), timeout=10)


@pytest.fixture(scope="module")
async def shop(pool: asyncpg.Pool) -> int:
    return await program.partner(pool, "refshop")


async def code(pool: asyncpg.Pool, shopper_id: int) -> str:
    async with pool.acquire() as conn, conn.transaction():
        return await referrals.code_for(conn, shopper_id)


async def register(pool: asyncpg.Pool, referred: int, with_code: str) -> int:
    async with pool.acquire() as conn, conn.transaction():
        return await referrals.register(conn, referred_shopper_id=referred, code=with_code)


async def test_a_shoppers_code_is_created_once_and_stays(pool: asyncpg.Pool, shop: int) -> None:
    holder = await program.shopper(pool, shop)
    first = await asyncio.gather(*(code(pool, holder.shopper_id) for _ in range(5)))
    assert len(set(first)) == 1
    assert await code(pool, holder.shopper_id) == first[0]
    other = await program.shopper(pool, shop)
    assert await code(pool, other.shopper_id) != first[0]


async def test_self_referral_loops_and_a_second_referral_are_refused(
    pool: asyncpg.Pool, shop: int
) -> None:
    a, b, c = [await program.shopper(pool, shop) for _ in range(3)]
    with pytest.raises(ReferralNotAllowed, match="themself"):
        await register(pool, a.shopper_id, await code(pool, a.shopper_id))
    with pytest.raises(ReferralCodeUnknown):
        await register(pool, a.shopper_id, "NOSUCHCODE")
    assert await register(pool, b.shopper_id, await code(pool, a.shopper_id)) == a.shopper_id
    with pytest.raises(ReferralNotAllowed, match="loop"):
        await register(pool, a.shopper_id, await code(pool, b.shopper_id))  # B cannot refer A
    assert await register(pool, c.shopper_id, (await code(pool, b.shopper_id)).lower())
    with pytest.raises(ReferralNotAllowed, match="loop"):
        await register(pool, a.shopper_id, await code(pool, c.shopper_id))  # A -> B -> C -> A
    with pytest.raises(ReferralNotAllowed, match="already referred"):
        await register(pool, c.shopper_id, await code(pool, a.shopper_id))


async def test_a_small_purchase_does_not_qualify_and_the_first_qualifying_one_pays_both(
    pool: asyncpg.Pool, shop: int
) -> None:
    referrer, friend = await program.shopper(pool, shop), await program.shopper(pool, shop)
    await register(pool, friend.shopper_id, await code(pool, referrer.shopper_id))
    small = await program.buy(pool, shop, friend.card_number, QUALIFYING_PURCHASE_MINOR - 1)
    assert [i.kind for i in small.breakdown] == ["base"]
    assert await program.balance(pool, referrer.card_number) == 0
    qualifying = await program.buy(pool, shop, friend.card_number, QUALIFYING_PURCHASE_MINOR)
    assert [(i.kind, i.points, i.paid_by) for i in qualifying.breakdown] == [
        ("base", QUALIFYING_PURCHASE_MINOR // 100, "partner"),
        ("referral", FRIEND_BONUS_POINTS, "network"),
    ]
    assert qualifying.points_earned == sum(i.points for i in qualifying.breakdown)
    assert await program.balance(pool, referrer.card_number) == REFERRER_BONUS_POINTS
    later = await program.buy(pool, shop, friend.card_number, QUALIFYING_PURCHASE_MINOR * 2)
    assert [i.kind for i in later.breakdown] == ["base"]
    assert await program.balance(pool, referrer.card_number) == REFERRER_BONUS_POINTS


async def test_both_bonuses_are_paid_once_under_100_concurrent_qualifying_purchases(
    pool: asyncpg.Pool, wide_pool: asyncpg.Pool, shop: int
) -> None:
    referrer, friend = await program.shopper(pool, shop), await program.shopper(pool, shop)
    await register(pool, friend.shopper_id, await code(pool, referrer.shopper_id))
    results = await asyncio.gather(
        *(
            program.buy(wide_pool, shop, friend.card_number, QUALIFYING_PURCHASE_MINOR)
            for _ in range(CONCURRENT_PURCHASES)
        )
    )
    rewarded = [r for r in results if any(i.kind == "referral" for i in r.breakdown)]
    assert len(rewarded) == 1
    assert await program.balance(pool, referrer.card_number) == REFERRER_BONUS_POINTS
    assert await program.balance(pool, friend.card_number) == sum(r.points_earned for r in results)
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM event_outbox WHERE event_type = 'referral.rewarded' "
            "AND shopper_id = $1",
            friend.shopper_id,
        )
        == 1
    )
    async with pool.acquire() as conn:
        assert await verify(conn) == []
