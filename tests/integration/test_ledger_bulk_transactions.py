"""Many entries in one transaction, and closes over statistics taken on empty tables.

Both once hit plans that made the guard trigger and the period close quadratic (see
migration 0081 and STAMP_ENTRIES); these tests pin the behaviour that must hold whatever
the plan: every posting of the transaction lands, a posting outside its entry's transaction
is refused, and every entry is stamped into exactly one period.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest

from ledger import service as ledger
from ledger import settlement
from ledger.verify import verify

ENTRIES_IN_ONE_TRANSACTION = 300
PARTNER_ID = 91
SHOPPER_ID_BASE = 9_100_000


async def test_one_transaction_with_many_entries_posts_them_all(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute("ANALYZE ledger.entry; ANALYZE ledger.posting")
        async with conn.transaction():
            for n in range(ENTRIES_IN_ONE_TRANSACTION):
                await ledger.earn(
                    conn,
                    idempotency_key=f"bulk:{n}",
                    shopper_id=SHOPPER_ID_BASE + n % 7,
                    partner_id=PARTNER_ID,
                    points=10,
                    issue_price_micros=1_000,
                    expires_at=None,
                )
        postings = await conn.fetchval(
            "SELECT count(*) FROM ledger.posting p JOIN ledger.operation o USING (entry_id) "
            "WHERE o.idempotency_key LIKE 'bulk:%'"
        )
        problems = await verify(conn)
    assert postings == ENTRIES_IN_ONE_TRANSACTION * 4
    assert problems == []


async def test_a_posting_added_to_a_committed_entry_is_refused(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        committed = await ledger.earn(
            conn,
            idempotency_key="bulk:late",
            shopper_id=SHOPPER_ID_BASE,
            partner_id=PARTNER_ID,
            points=5,
            issue_price_micros=1_000,
            expires_at=None,
        )
        account_id = await conn.fetchval(
            "SELECT account_id FROM ledger.posting WHERE entry_id = $1 LIMIT 1", committed.entry_id
        )
        with pytest.raises(asyncpg.PostgresError, match="posting_outside_entry_transaction"):
            await conn.execute(
                "INSERT INTO ledger.posting (entry_id, account_id, asset, amount) "
                "VALUES ($1, $2, 'PTS', 1)",
                committed.entry_id,
                account_id,
            )


async def test_a_close_after_analyze_on_an_empty_period_table_stamps_each_entry_once(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        await conn.execute("ANALYZE settlement.entry_period")
        await asyncio.sleep(0.002)
        period_end = datetime.now(UTC)
        await settlement.close_period(
            conn, period_end=period_end, closed_by="test", now=datetime.now(UTC)
        )
        entries = await conn.fetchval(
            "SELECT count(*) FROM ledger.entry WHERE created_at < $1", period_end
        )
        stamped = await conn.fetchval("SELECT count(*) FROM settlement.entry_period")
        distinct = await conn.fetchval(
            "SELECT count(DISTINCT entry_id) FROM settlement.entry_period"
        )
    assert entries > ENTRIES_IN_ONE_TRANSACTION
    assert stamped == distinct == entries
