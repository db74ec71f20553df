"""Segment refresh over 1,000,000 shoppers and 20,000,000 purchases (issue 8). Not a test.

    nice .venv/bin/python -m tests.load.segments_bench --shoppers 1000000 --purchases 20000000

It builds a throwaway database (embedded PostgreSQL, or DATABASE_URL's server) and measures:

1. the segment refresh (`segments.refresh_segments`, all set-based SQL) over the aggregate
   state that PURCHASES purchases by SHOPPERS shoppers produce: shopper_stats (visits summing
   to PURCHASES, a year of first/last purchases), three partners and three basket categories per
   shopper, 80% data-sharing consent, birth dates. The refresh reads only aggregates, so its
   cost depends on shoppers and category rows, not on the raw purchase count; that state is
   generated with generate_series directly rather than by folding 20M rows first. Run twice:
   a first refresh (every membership new) and a steady-state one (only the difference written).
2. the folder's throughput on a real sample: FOLD_SAMPLE purchases (with one basket line each)
   inserted into partner_transactions and purchase_lines, the triggers queueing deltas, then
   `aggregates.refresh_aggregates` draining the queue; the figure for PURCHASES is extrapolated.

It prints wall times, the PostgreSQL backend's peak resident memory (VmHWM, when the server is
local) and the temporary file bytes written (work_mem spills), and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from infra import embedded, migrations
from infra.db import Conn
from shoppers import aggregates, segments
from tests.support.databases import create_database, drop_database

PARTNERS = 20
CATEGORIES = ("grocery", "fuel", "pharmacy", "fashion", "books", "travel", "home", "toys")
FOLD_RUNS_MAX = 100_000

SEED_PARTNERS = """
INSERT INTO partners (slug, name, created_by)
SELECT 'bench-' || g, 'Bench ' || g, 'bench' FROM generate_series(1, $1) AS g
"""
SEED_SHOPPERS = """
INSERT INTO shoppers (enrolled_by_partner_id, birth_date)
SELECT 1 + g % $2, make_date(1950 + g % 50, 1 + g % 12, 1 + g % 28)
FROM generate_series(1, $1) AS g
"""
SEED_CONSENTS = """
INSERT INTO shopper_consents (shopper_id, data_sharing, marketing)
SELECT id, id % 5 <> 0, id % 3 = 0 FROM shoppers
"""
# visits: 1 + h % (2 * avg - 1), so the mean is the average number of purchases per shopper
SEED_STATS = """
INSERT INTO shopper_stats (shopper_id, spend_minor, visits, first_purchase_at, last_purchase_at,
    points_earned, points_burned, partners_visited, favourite_partner_id, favourite_category)
SELECT id, visits * (500 + h % 4500), visits,
       $2::timestamptz - make_interval(days => (365 + h % 365)::int),
       $2::timestamptz - make_interval(days => (h / 7 % 365)::int),
       visits * 20, visits * 5, 3, 1 + h % $3, NULL
FROM (SELECT id, abs(hashint8(id)) AS h,
             (1 + abs(hashint8(id)) % (2 * $1 - 1))::integer AS visits
      FROM shoppers) s
"""
SEED_CATEGORIES = """
INSERT INTO shopper_category_stats (shopper_id, partner_id, category, spend_minor, lines,
                                    last_line_at)
SELECT st.shopper_id, 1 + (h + k) % $1, ($2::text[])[1 + ((h / 11 + k) % array_length($2, 1))],
       st.spend_minor / (k + 2), st.visits, st.last_purchase_at
FROM (SELECT shopper_id, spend_minor, visits, last_purchase_at, abs(hashint8(shopper_id)) AS h
      FROM shopper_stats) st
CROSS JOIN generate_series(0, 2) AS k
ON CONFLICT DO NOTHING
"""
SEED_FOLD_SAMPLE = """
WITH ins AS (
    INSERT INTO partner_transactions (id, partner_id, partner_ref, kind, status, shopper_id,
        card_number, points, amount_minor, pricing_version, idempotency_key, created_at)
    SELECT gen_random_uuid(), 1 + n % $2, 'fold-' || n, 'purchase', 'completed',
           1 + abs(hashint8(n)) % $3, '7900000000000000', 10, 1000, 1, 'fold-' || n, $4
    FROM generate_series(1, $1) AS n
    RETURNING id, partner_id, shopper_id
)
INSERT INTO purchase_lines (transaction_id, line_no, shopper_id, partner_id, category,
                            amount_minor)
SELECT id, 0, shopper_id, partner_id, 'grocery', 1000 FROM ins
"""


def backend_peak_kib(pid: int) -> int | None:
    """VmHWM of a local PostgreSQL backend, when its /proc entry is readable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


async def temp_bytes(conn: Conn) -> int:
    value = await conn.fetchval(
        "SELECT temp_bytes FROM pg_stat_database WHERE datname = current_database()"
    )
    return int(value or 0)


async def run(dsn: str, shoppers: int, purchases: int, fold_sample: int) -> None:
    now = datetime.now(UTC)
    average = max(1, round(purchases / shoppers))
    conn = await asyncpg.connect(dsn, command_timeout=3_600)
    try:
        await migrations.migrate(conn)
        started = time.monotonic()
        await conn.execute(SEED_PARTNERS, PARTNERS)
        await conn.execute(SEED_SHOPPERS, shoppers, PARTNERS)
        await conn.execute(SEED_CONSENTS)
        await conn.execute(SEED_STATS, average, now, PARTNERS)
        await conn.execute(SEED_CATEGORIES, PARTNERS, list(CATEGORIES))
        await conn.execute("ANALYZE")
        represented = await conn.fetchval("SELECT sum(visits) FROM shopper_stats")
        print(
            f"seeded {shoppers:,} shoppers, aggregates of {represented:,} purchases, "
            f"{await conn.fetchval('SELECT count(*) FROM shopper_category_stats'):,} category "
            f"rows in {time.monotonic() - started:.1f} s"
        )
        print(f"work_mem {await conn.fetchval('SHOW work_mem')}")
    finally:
        await conn.close()

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1, command_timeout=3_600)
    assert pool is not None
    try:
        async with pool.acquire() as probe:
            backend = await probe.fetchval("SELECT pg_backend_pid()")
            spilled_before = await temp_bytes(probe)
        for label in ("first refresh", "steady-state refresh"):
            started = time.monotonic()
            members = await segments.refresh_segments(pool, now=now, interval_s=0)
            elapsed = time.monotonic() - started
            peak = backend_peak_kib(backend)
            print(
                f"{label}: {members:,} memberships in {elapsed:.1f} s; backend peak RSS "
                f"{'n/a' if peak is None else f'{peak / 1024:.0f} MiB'}"
            )
        async with pool.acquire() as probe:
            spilled = await temp_bytes(probe) - spilled_before
            sizes = await probe.fetch(
                "SELECT segment, count(*) AS n FROM shopper_segments"
                " WHERE segment NOT LIKE 'affinity:%' GROUP BY 1 ORDER BY 2 DESC"
            )
        print(f"temporary files written: {spilled / 2**20:.0f} MiB")
        print("segments: " + ", ".join(f"{r['segment']} {r['n']:,}" for r in sizes))

        async with pool.acquire() as writer:
            started = time.monotonic()
            await writer.execute(SEED_FOLD_SAMPLE, fold_sample, PARTNERS, shoppers, now)
            inserted_s = time.monotonic() - started
        started = time.monotonic()
        folded = 0
        for _ in range(FOLD_RUNS_MAX):
            done = await aggregates.refresh_aggregates(pool)
            folded += done
            if done == 0:
                break
        fold_s = time.monotonic() - started
        rate = folded / fold_s if fold_s else float("inf")
        print(
            f"fold sample: {fold_sample:,} purchases + lines inserted in {inserted_s:.1f} s "
            f"(triggers included); {folded:,} deltas folded in {fold_s:.1f} s "
            f"({rate:,.0f} deltas/s); {2 * purchases:,} deltas for {purchases:,} purchases "
            f"would fold in about {2 * purchases / rate / 60:.0f} min"
        )
    finally:
        await pool.close()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"bench process peak RSS {peak_mib:.0f} MiB")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shoppers", type=int, default=1_000_000)
    parser.add_argument("--purchases", type=int, default=20_000_000)
    parser.add_argument("--fold-sample", type=int, default=200_000)
    args = parser.parse_args()
    configured = os.environ.get("DATABASE_URL")
    with tempfile.TemporaryDirectory() as tmp:
        server = None
        if configured:
            server_dsn = configured
        else:
            server = embedded.start(Path(tmp), cleanup_mode="delete")
            server_dsn = server.dsn
        try:
            dsn = await create_database(server_dsn, template=None)
            try:
                await run(dsn, args.shoppers, args.purchases, args.fold_sample)
            finally:
                await drop_database(server_dsn, dsn)
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    asyncio.run(main())
