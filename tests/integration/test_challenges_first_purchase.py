"""The "first purchase at a partner new to the shopper" challenge on real PostgreSQL, through
the worker: a partner the shopper bought at before the challenge is not new; a new one is;
a partner's own challenge of that kind rewards only a first purchase at that partner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from contracts.challenges import ChallengeCreate
from ledger.verify import verify
from shoppers.challenges import definitions
from tests.support import program
from tests.support.challenges import drain, retire_all


@pytest.fixture(autouse=True)
async def only_these_challenges(pool: asyncpg.Pool) -> AsyncIterator[None]:
    await retire_all(pool)
    await program.end_all_campaigns(pool)
    yield
    await retire_all(pool)


async def first_purchase_challenge(pool: asyncpg.Pool, partner_id: int | None) -> int:
    now = datetime.now(UTC)
    request = ChallengeCreate(
        name="A partner new to you",
        kind="first_at_new_partner",
        reward_points=70,
        budget_points=700,
        starts_at=now,  # after the purchases made before it: those are outside the window
        ends_at=now + timedelta(days=7),
    )
    async with pool.acquire() as conn, conn.transaction():
        return (await definitions.create(conn, partner_id, request, actor="test")).id


async def test_only_a_partner_new_to_the_shopper_completes_it(pool: asyncpg.Pool) -> None:
    known = await program.partner(pool, "firstknown")
    fresh = await program.partner(pool, "firstfresh")
    regular = await program.shopper(pool, known)
    await program.buy(pool, known, regular.card_number, 1_000)  # before the challenge
    newcomer = await program.shopper(pool, known)
    await program.buy(pool, fresh, newcomer.card_number, 1_000)  # before the partner challenge

    network = await first_purchase_challenge(pool, None)
    at_fresh = await first_purchase_challenge(pool, fresh)

    await program.buy(pool, known, regular.card_number, 1_000)  # not new
    await drain(pool)
    assert await program.balance(pool, regular.card_number) == 20
    await program.buy(pool, fresh, regular.card_number, 1_000)  # new: both challenges
    await drain(pool)
    assert await program.balance(pool, regular.card_number) == 30 + 70 + 70

    await program.buy(pool, fresh, newcomer.card_number, 1_000)  # fresh is no longer new
    await drain(pool)
    assert await program.balance(pool, newcomer.card_number) == 20

    awards = await pool.fetch(
        "SELECT challenge_id, shopper_id FROM challenge_awards WHERE state = 'active' "
        "ORDER BY challenge_id"
    )
    assert [(r["challenge_id"], r["shopper_id"]) for r in awards] == [
        (network, regular.shopper_id),
        (at_fresh, regular.shopper_id),
    ]
    async with pool.acquire() as conn:
        assert await verify(conn) == []
