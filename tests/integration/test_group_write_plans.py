"""The set-based functions of a group commit plan with index access only (migration 0097).

A plan cached while a table was small would seq-scan it for as long as the backend lives;
these functions touch a group's rows by key, so they run with seq scans priced out. A later
`CREATE OR REPLACE FUNCTION` without the SET clause would silently drop it: this catches that.
"""

from __future__ import annotations

import asyncpg

GROUP_WRITES = (
    "ledger.earn_many",
    "public.partner_purchase_write_many",
    "public.gateway_admit_many",
)


async def test_the_group_writes_run_with_seq_scans_priced_out(pool: asyncpg.Pool) -> None:
    rows = await pool.fetch(
        "SELECT p.pronamespace::regnamespace::text || '.' || p.proname AS name, p.proconfig"
        " FROM pg_proc p WHERE p.pronamespace::regnamespace::text || '.' || p.proname"
        " = ANY($1::text[])",
        list(GROUP_WRITES),
    )
    assert sorted(row["name"] for row in rows) == sorted(GROUP_WRITES)  # one of each
    for row in rows:
        assert row["proconfig"] == ["enable_seqscan=off"], row


async def test_a_wallet_update_by_key_uses_the_index_on_a_tiny_table(pool: asyncpg.Pool) -> None:
    """What the setting buys: with a handful of wallets the planner's own choice for earn_many's
    UPDATE shape is a seq scan; priced out, it is the primary key."""
    update = (
        "EXPLAIN (FORMAT JSON) UPDATE ledger.wallet w SET available = w.available + x.points"
        " FROM unnest($1::bigint[], $2::bigint[]) AS x (shopper_id, points)"
        " WHERE w.shopper_id = x.shopper_id"
    )
    await pool.execute("ANALYZE ledger.wallet")  # the statistics of a fresh network
    async with pool.acquire() as conn, conn.transaction():
        chosen = await conn.fetchval(update, [1, 2], [10, 20])
        await conn.execute("SET LOCAL enable_seqscan = off")
        priced_out = await conn.fetchval(update, [1, 2], [10, 20])
    assert "Seq Scan" in chosen
    assert "Seq Scan" not in priced_out
    assert "wallet_pkey" in priced_out
