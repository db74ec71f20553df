"""The demo network seeded by `make run` (`coalition serve --demo`). Idempotent."""

from __future__ import annotations

import asyncpg

from infra.db import CONNECT_TIMEOUT_S


async def seed(dsn: str) -> str:
    """Seed what the built capabilities allow; return a one-line summary."""
    conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    try:
        currency = await conn.fetchval("SELECT currency FROM network_settings")
    finally:
        await conn.close()
    return f"network currency {currency.strip()}; partners and shoppers arrive with the ledger"
