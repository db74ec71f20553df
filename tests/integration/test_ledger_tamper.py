"""Editing the journal behind the ledger's back (triggers disabled) is caught by verify().

Each test tampers, checks that verify() names what broke, then restores the original rows and
checks that verify() is clean again, so the tests share one database safely.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from infra.db import Conn
from ledger import service as ledger
from ledger.verify import Problem, verify

_ids = itertools.count(90_000)


@pytest.fixture
async def conn(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as connection:
        yield connection  # type: ignore[misc]


async def sealed_burn(conn: Conn) -> ledger.EntryResult:
    """A shopper with an earn and a burn, all sealed; verify() clean."""
    shopper_id = next(_ids)
    await ledger.earn(
        conn,
        idempotency_key=f"tamper:earn:{shopper_id}",
        shopper_id=shopper_id,
        partner_id=5,
        points=100,
        issue_price_micros=5_000,
        expires_at=datetime.now(UTC) + timedelta(days=30),
    )
    burned = await ledger.burn(
        conn,
        idempotency_key=f"tamper:burn:{shopper_id}",
        shopper_id=shopper_id,
        partner_id=6,
        points=40,
        redemption_price_micros=4_000,
    )
    while await ledger.seal_blocks(conn):
        pass
    assert await verify(conn) == []
    return burned


async def fetch_one(conn: Conn, query: str, *args: object) -> asyncpg.Record:
    row = await conn.fetchrow(query, *args)
    assert row is not None, query
    return row


def checks(problems: list[Problem]) -> set[tuple[int, str]]:
    return {(p.invariant, p.check) for p in problems}


async def as_replica(conn: Conn, statement: str, *args: object) -> None:
    """Run a statement with every trigger off, as a superuser could."""
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(statement, *args)


async def test_edited_posting_amount_is_caught(conn: Conn) -> None:
    burned = await sealed_burn(conn)
    posting_id, amount = await fetch_one(
        conn,
        "SELECT posting_id, amount FROM ledger.posting p JOIN ledger.account a USING (account_id)"
        " WHERE p.entry_id = $1 AND a.purpose = 'wallet'",
        burned.entry_id,
    )
    await as_replica(
        conn, "UPDATE ledger.posting SET amount = amount + 30 WHERE posting_id = $1", posting_id
    )
    problems = await verify(conn)
    found = checks(problems)
    assert (1, "entry_balanced") in found
    assert (7, "sealed_entry_changed") in found
    assert (2, "maintained_balance") in found
    changed = [p for p in problems if p.check == "sealed_entry_changed"]
    assert [p.entry_id for p in changed] == [burned.entry_id]
    await as_replica(
        conn, "UPDATE ledger.posting SET amount = $2 WHERE posting_id = $1", posting_id, amount
    )
    assert await verify(conn) == []


async def test_balanced_rewrite_of_an_entry_is_caught(conn: Conn) -> None:
    """Moving money between two postings keeps the entry balanced; the chain still sees it."""
    burned = await sealed_burn(conn)
    rows = await conn.fetch(
        "SELECT posting_id, amount FROM ledger.posting WHERE entry_id = $1 AND asset <> 'PTS'"
        " ORDER BY posting_id",
        burned.entry_id,
    )
    first, second = rows[0], rows[1]
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            "UPDATE ledger.posting SET amount = amount + 1000 WHERE posting_id = $1", first[0]
        )
        await conn.execute(
            "UPDATE ledger.posting SET amount = amount - 1000 WHERE posting_id = $1", second[0]
        )
    problems = await verify(conn)
    assert (1, "entry_balanced") not in checks(problems)
    assert [p.entry_id for p in problems if p.check == "sealed_entry_changed"] == [burned.entry_id]
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        for row in (first, second):
            await conn.execute(
                "UPDATE ledger.posting SET amount = $2 WHERE posting_id = $1", row[0], row[1]
            )
    assert await verify(conn) == []


async def test_edited_entry_with_triggers_disabled_is_caught(conn: Conn) -> None:
    burned = await sealed_burn(conn)
    await conn.execute("ALTER TABLE ledger.entry DISABLE TRIGGER ALL")
    try:
        await conn.execute(
            'UPDATE ledger.entry SET metadata = \'{"note": "nothing to see"}\' WHERE entry_id = $1',
            burned.entry_id,
        )
        problems = await verify(conn)
        # Triggers still disabled: named too.
        assert (6, "guard_trigger") in checks(problems)
    finally:
        await conn.execute("ALTER TABLE ledger.entry ENABLE TRIGGER ALL")
    problems = await verify(conn)
    assert [(p.invariant, p.check, p.entry_id) for p in problems] == [
        (7, "sealed_entry_changed", burned.entry_id)
    ]
    await as_replica(
        conn, "UPDATE ledger.entry SET metadata = '{}' WHERE entry_id = $1", burned.entry_id
    )
    assert await verify(conn) == []


async def test_deleted_entry_is_caught(conn: Conn) -> None:
    burned = await sealed_burn(conn)
    entry = await fetch_one(conn, "SELECT * FROM ledger.entry WHERE entry_id = $1", burned.entry_id)
    postings = await conn.fetch(
        "SELECT * FROM ledger.posting WHERE entry_id = $1 ORDER BY posting_id", burned.entry_id
    )
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute("DELETE FROM ledger.posting WHERE entry_id = $1", burned.entry_id)
        await conn.execute("DELETE FROM ledger.entry WHERE entry_id = $1", burned.entry_id)
    found = checks(await verify(conn))
    assert (7, "sealed_entry_missing") in found
    assert (6, "entry_deleted") in found
    assert (3, "lots_cover_wallet") in found
    async with conn.transaction():
        await conn.execute("SET LOCAL session_replication_role = replica")
        await conn.execute(
            "INSERT INTO ledger.entry OVERRIDING SYSTEM VALUE SELECT * FROM "
            "jsonb_populate_record(NULL::ledger.entry, $1::jsonb)",
            _row_json(entry),
        )
        for posting in postings:
            await conn.execute(
                "INSERT INTO ledger.posting OVERRIDING SYSTEM VALUE SELECT * FROM "
                "jsonb_populate_record(NULL::ledger.posting, $1::jsonb)",
                _row_json(posting),
            )
    assert await verify(conn) == []


async def test_forged_block_hash_is_caught(conn: Conn) -> None:
    await sealed_burn(conn)
    block_id, hash_ = await fetch_one(
        conn, "SELECT block_id, hash FROM ledger.block ORDER BY block_id DESC LIMIT 1"
    )
    await as_replica(
        conn, "UPDATE ledger.block SET hash = $2 WHERE block_id = $1", block_id, bytes(32)
    )
    problems = await verify(conn)
    assert (7, "block_hash") in checks(problems)
    assert any(p.block_id == block_id for p in problems)
    await as_replica(conn, "UPDATE ledger.block SET hash = $2 WHERE block_id = $1", block_id, hash_)
    assert await verify(conn) == []


def _row_json(row: asyncpg.Record) -> str:
    import json

    def plain(value: object) -> object:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, str) and value[:1] in "{[":
            return json.loads(value)
        return value

    return json.dumps({k: plain(v) for k, v in dict(row).items()})
