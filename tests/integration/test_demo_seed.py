"""The demo network: seeded once, books sound, and its printed keys really sign."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg

from gateway import demo
from ledger.verify import verify


async def test_seeding_once_leaves_sound_books_and_twice_changes_nothing(
    pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    first = await demo.seed(database_url, tmp_path, None)
    async with pool.acquire() as conn:
        entries = await conn.fetchval("SELECT count(*) FROM ledger.entry")
        problems = await verify(conn)
    second = await demo.seed(database_url, tmp_path, None)
    async with pool.acquire() as conn:
        entries_after = await conn.fetchval("SELECT count(*) FROM ledger.entry")
    assert problems == []
    assert entries == demo.SHOPPERS * len(demo.PURCHASE_AMOUNTS_MINOR) + 1
    assert len(re.findall(r"key_id pk_\w+ +secret sk_", first)) == 2
    assert "already seeded" in second
    assert "secret" not in second
    assert entries_after == entries
