from __future__ import annotations

import asyncpg
import pytest

from infra import outbox


async def test_an_event_commits_with_its_transaction_and_vanishes_with_a_rollback(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        async with conn.transaction():
            kept = await outbox.record(
                conn, "tier.changed", shopper_id=7, payload={"from": "member", "to": "silver"}
            )
        rolled_back = conn.transaction()
        await rolled_back.start()
        await outbox.record(conn, "tier.changed", shopper_id=7, payload={"x": 1})
        await rolled_back.rollback()
        rows = await conn.fetch("SELECT event_id, payload FROM event_outbox WHERE shopper_id = 7")
    assert [r["event_id"] for r in rows] == [kept]


async def test_recording_outside_a_transaction_is_a_bug(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(AssertionError):
            await outbox.record(conn, "tier.changed", payload={})


async def test_malformed_event_types_are_refused_by_the_database(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        with pytest.raises(asyncpg.CheckViolationError):
            await outbox.record(conn, "Tier Changed", payload={})
