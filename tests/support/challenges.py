"""Helpers for challenge tests: drive the challenge worker, read awards, retire challenges."""

from __future__ import annotations

import asyncio

import asyncpg

from shoppers.challenges import worker


async def drain(pool: asyncpg.Pool, *, workers: int = 1) -> int:
    """Run `workers` challenge workers side by side until the queue is empty."""
    total = 0
    for _ in range(100):
        done = await asyncio.gather(*(worker.run(pool, batch_max=3) for _ in range(workers)))
        total += sum(done)
        if not await pool.fetchval("SELECT count(*) FROM challenge_queue"):
            return total
    raise AssertionError("the challenge queue did not drain")


async def retire_all(pool: asyncpg.Pool) -> None:
    """Move every challenge far into the past, so later tests' purchases queue nothing."""
    await pool.execute(
        "UPDATE challenges SET starts_at = starts_at - interval '3 years', "
        "ends_at = ends_at - interval '3 years'"
    )
    await pool.execute("DELETE FROM challenge_queue")
