"""Many entries in one transaction (group commit, `POST /v1/purchases/batch`) stay linear.

Two plans once made this quadratic, each only once statistics existed: the guard trigger
`posting_in_entry_tx` looked its entry up through the txid index (one scan of every entry of
the transaction per posting; migration 0081 reads by primary key), and the period close
stamped entries with an anti join that, over an analyzed empty `settlement.entry_period`,
rescanned that table per entry (STAMP_ENTRIES now inserts ON CONFLICT DO NOTHING).

Nothing here is timed. The guard's shape is read from PostgreSQL's own counters of the
current transaction (`pg_stat_get_xact_tuples_returned`: tuples read per table and per index,
exact until the transaction ends): the entries read per earn must not grow with the number of
entries in the transaction. The close's shape is its stamping statement's plan. The guard's
refusals and the close's one-period-per-entry rule are checked alongside.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime

import asyncpg
import pytest

from infra.db import Conn
from ledger import _settlement_queries as settlement_queries
from ledger import service as ledger
from ledger import settlement
from ledger.verify import verify

PARTNER_ID = 93
SHOPPERS = 50
SHOPPER_ID_BASE = 9_300_000
# A committed history of one multi-entry transaction, then ANALYZE: with these statistics
# the guard's former lookup by (entry_id, txid) went through the txid index.
HISTORY_ENTRIES = 1_000
SMALL, LARGE = 200, 2_000
CLOSE_ENTRIES = 3_000

_keys = itertools.count()

# Tuples read from a relation in the current transaction: by sequential scans for a table,
# through the index for an index.
TUPLES_READ = "SELECT pg_stat_get_xact_tuples_returned($1::regclass)"
ENTRY_INDEXES = """
SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'ledger.entry'::regclass
"""


async def earn(conn: Conn, n: int) -> int:
    result = await ledger.earn(
        conn,
        idempotency_key=f"multi-entry:{next(_keys)}",
        shopper_id=SHOPPER_ID_BASE + n % SHOPPERS,
        partner_id=PARTNER_ID,
        points=10,
        issue_price_micros=1_000,
        expires_at=None,
    )
    return result.entry_id


async def earns_in_one_transaction(conn: Conn, count: int) -> list[int]:
    async with conn.transaction():
        return [await earn(conn, n) for n in range(count)]


async def tuples_read(conn: Conn, relations: list[str]) -> dict[str, int]:
    return {r: int(await conn.fetchval(TUPLES_READ, r)) for r in relations}


async def entry_reads_of_earns(conn: Conn, count: int) -> dict[str, int]:
    """Tuples of ledger.entry read, per access path, by `count` earns in one transaction."""
    relations = ["ledger.entry", *[r["indexrelid"] for r in await conn.fetch(ENTRY_INDEXES)]]
    async with conn.transaction():
        before = await tuples_read(conn, relations)
        for n in range(count):
            await earn(conn, n)
        after = await tuples_read(conn, relations)
    return {r: after[r] - before[r] for r in relations}


def refusal(exc: asyncpg.PostgresError) -> tuple[str | None, str, int]:
    """SQLSTATE, error code and the entry named by a refusal."""
    return exc.sqlstate, exc.message, json.loads(exc.detail or "{}").get("entry_id")


async def test_each_posting_reads_its_entry_by_key_whatever_the_transaction_holds(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        await earns_in_one_transaction(conn, HISTORY_ENTRIES)
        await conn.execute("ANALYZE ledger.entry; ANALYZE ledger.posting")
        small = await entry_reads_of_earns(conn, SMALL)
        large = await entry_reads_of_earns(conn, LARGE)
        postings = await conn.fetchval(
            "SELECT count(*) FROM ledger.posting p JOIN ledger.entry e USING (entry_id) "
            "WHERE e.partner_id = $1",
            PARTNER_ID,
        )
        problems = await verify(conn)
    # The former plan read every entry of the transaction through this index per posting:
    # about 4 x LARGE**2 / 2 tuples here (8 million).
    assert small["ledger.entry_settlement_txid"] == large["ledger.entry_settlement_txid"] == 0
    # No sequential scan of the journal per posting either.
    assert small["ledger.entry"] == large["ledger.entry"] == 0
    # Per earn, a constant number of entries is read (by key: the guard for each posting,
    # the foreign keys of postings and lot), however many the transaction holds; with the
    # former plan, ten times as many entries meant ten times as many per earn.
    per_earn_small, per_earn_large = sum(small.values()) / SMALL, sum(large.values()) / LARGE
    assert 0 < per_earn_large <= 1.1 * per_earn_small
    assert postings == (HISTORY_ENTRIES + SMALL + LARGE) * 4
    assert problems == []


async def test_postings_outside_their_entrys_transaction_are_refused(
    pool: asyncpg.Pool,
) -> None:
    insert = (
        "INSERT INTO ledger.posting (entry_id, account_id, asset, amount) "
        "VALUES ($1, $2, 'PTS', $3)"
    )
    async with pool.acquire() as conn, pool.acquire() as other:
        await conn.execute("ANALYZE ledger.entry")
        committed = await earn(conn, 0)
        account_id = await conn.fetchval(
            "SELECT account_id FROM ledger.posting WHERE entry_id = $1 LIMIT 1", committed
        )
        missing = await conn.fetchval("SELECT max(entry_id) + 1000 FROM ledger.entry")
        refused: list[tuple[str | None, str, int]] = []
        # A committed entry, and one that does not exist.
        for entry_id in (committed, missing):
            with pytest.raises(asyncpg.PostgresError) as caught:
                await conn.execute(insert, entry_id, account_id, 1)
            refused.append(refusal(caught.value))
        # An entry of another transaction, still open; that transaction itself may still add
        # postings to it (balanced by commit time; rolled back here, the books stay as they are).
        other_tx = other.transaction()
        await other_tx.start()
        try:
            uncommitted = await earn(other, 1)
            with pytest.raises(asyncpg.PostgresError) as caught:
                await conn.execute(insert, uncommitted, account_id, 1)
            refused.append(refusal(caught.value))
            await other.execute(insert, uncommitted, account_id, 1)
            await other.execute(insert, uncommitted, account_id, -1)
        finally:
            await other_tx.rollback()
        # Among the many entries of one open transaction, an earlier entry still takes postings.
        tx = conn.transaction()
        await tx.start()
        try:
            first = await earn(conn, 2)
            for n in range(50):
                await earn(conn, n)
            await conn.execute(insert, first, account_id, 1)
            await conn.execute(insert, first, account_id, -1)
            # Savepoints (group commit runs each call after its own) are the same transaction.
            async with conn.transaction():
                in_savepoint = await earn(conn, 3)
            async with conn.transaction():
                await conn.execute(insert, in_savepoint, account_id, 1)
                await conn.execute(insert, first, account_id, -1)
            # ... and a committed one still does not.
            with pytest.raises(asyncpg.PostgresError) as caught:
                await conn.execute(insert, committed, account_id, 1)
            refused.append(refusal(caught.value))
        finally:
            await tx.rollback()
        assert await verify(conn) == []
    code = "CL001", "posting_outside_entry_transaction"
    assert refused == [
        (*code, committed),
        (*code, missing),
        (*code, uncommitted),
        (*code, committed),
    ]


async def test_a_close_over_an_analyzed_empty_period_table_stamps_each_entry_once(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM settlement.entry_period") == 0
        for _ in range(CLOSE_ENTRIES // 1_000):
            await earns_in_one_transaction(conn, 1_000)
        # What `vacuumdb --analyze` of a fresh database does: statistics of an empty table.
        await conn.execute("ANALYZE settlement.entry_period; ANALYZE ledger.entry")
        await asyncio.sleep(0.002)
        first_end = datetime.now(UTC)
        entries = await conn.fetchval(
            "SELECT count(*) FROM ledger.entry WHERE created_at < $1", first_end
        )
        plan = await stamping_plan(conn)
        await settlement.close_period(
            conn, period_end=first_end, closed_by="test", now=datetime.now(UTC)
        )
        stamps = await conn.fetch(
            "SELECT e.entry_id, count(ep.entry_id) AS n FROM ledger.entry e "
            "LEFT JOIN settlement.entry_period ep USING (entry_id) GROUP BY e.entry_id"
        )

        # An entry created before the next close but committed after it lands in the one after.
        async with pool.acquire() as slow:
            tx = slow.transaction()
            await tx.start()
            late = await earn(slow, 0)
            await asyncio.sleep(0.002)
            during = await settlement.close_period(
                conn, period_end=datetime.now(UTC), closed_by="test", now=datetime.now(UTC)
            )
            await tx.commit()
        await asyncio.sleep(0.002)
        after_late = await settlement.close_period(
            conn, period_end=datetime.now(UTC), closed_by="test", now=datetime.now(UTC)
        )
        late_stamps = await conn.fetch(
            "SELECT period_id FROM settlement.entry_period WHERE entry_id = $1", late
        )
        duplicates = await conn.fetchval(
            "SELECT count(*) FROM (SELECT entry_id FROM settlement.entry_period "
            "GROUP BY entry_id HAVING count(*) > 1) d"
        )
        problems = await settlement.verify_settlements(conn)

    assert entries >= CLOSE_ENTRIES
    assert len(stamps) == entries
    assert [r["entry_id"] for r in stamps if r["n"] != 1] == []
    # The insert's conflict check goes by key. The former anti join was planned here as a
    # nested loop over a sequential scan of entry_period, rereading per entry every row the
    # statement had inserted so far (invisible to it, so no tuple counter shows them).
    assert "Conflict Resolution: NOTHING" in plan
    assert "Anti Join" not in plan
    assert "Scan on entry_period" not in plan
    assert [r["period_id"] for r in late_stamps] == [after_late.period_id]
    assert during.period_id != after_late.period_id
    assert duplicates == 0
    assert problems == []


async def stamping_plan(conn: Conn) -> str:
    """EXPLAIN of the close's stamping statement (not executed), as its first close plans it."""
    await conn.execute(
        "PREPARE stamp_entries (bigint, timestamptz, bigint) AS " + settlement_queries.STAMP_ENTRIES
    )
    try:
        rows = await conn.fetch("EXPLAIN EXECUTE stamp_entries (0, now(), NULL)")
    finally:
        await conn.execute("DEALLOCATE stamp_entries")
    return "\n".join(r[0] for r in rows)
