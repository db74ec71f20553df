"""Reconcile a large partner file in bounded memory (issue 5). Not a test: run it by hand.

    .venv/bin/python -m tests.load.reconcile_bench --lines 1000000

It builds a throwaway database (embedded PostgreSQL, or DATABASE_URL's server), records
LINES network transactions for one partner directly in SQL, then streams a generated CSV of
the same size through `ledger.reconciliation.reconcile` without ever materializing it, with
injected differences: every 1,000th line has wrong points, every 1,000th (offset) a wrong
amount, every 5,000th is a duplicate, every 10,000th malformed, every 2,000th missing in the
network; the network's last 100 references are absent from the file. It prints the time and
the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from infra import embedded, migrations
from ledger import reconciliation
from tests.support.databases import create_database, drop_database

CARD = "4000000000000002"
WHEN = "2030-01-02T10:00:00+00:00"
MISSING_AT_PARTNER = 100
SEED_SQL = """
INSERT INTO partners (slug, name, created_by) VALUES ('bench', 'Bench', 'bench') RETURNING id
"""
SEED_SHOPPER = """
INSERT INTO shoppers (enrolled_by_partner_id) VALUES ($1) RETURNING id
"""
SEED_TRANSACTIONS = """
INSERT INTO partner_transactions (id, partner_id, partner_ref, kind, status, shopper_id,
    card_number, points, amount_minor, pricing_version, idempotency_key, created_at)
SELECT gen_random_uuid(), $1, 'ref-' || n, 'purchase', 'completed', $2, $3, 10, 1000, 1,
       'bench-' || n, $4
FROM generate_series(0, $5 - 1) AS n
"""


async def partner_file(lines: int) -> AsyncIterator[bytes]:
    batch: list[str] = ["partner_ref,type,card_number,points,amount_minor,occurred_at\n"]
    for n in range(lines - MISSING_AT_PARTNER):
        points, amount, ref = 10, 1000, f"ref-{n}"
        if n % 1_000 == 1:
            points = 11
        if n % 1_000 == 2:
            amount = 999
        if n % 2_000 == 3:
            ref = f"unknown-{n}"
        if n % 10_000 == 4:
            batch.append(f"{ref},purchase,{CARD},ten,{amount},{WHEN}\n")
        else:
            batch.append(f"{ref},purchase,{CARD},{points},{amount},{WHEN}\n")
        if n % 5_000 == 5:
            batch.append(f"{ref},purchase,{CARD},{points},{amount},{WHEN}\n")
        if len(batch) >= 1_000:
            yield "".join(batch).encode()
            batch.clear()
    if batch:
        yield "".join(batch).encode()


async def run(dsn: str, lines: int) -> None:
    conn = await asyncpg.connect(dsn, command_timeout=3_600)
    try:
        await migrations.migrate(conn)
        partner_id = await conn.fetchval(SEED_SQL)
        shopper_id = await conn.fetchval(SEED_SHOPPER, partner_id)
        at = datetime.now(UTC)
        started = time.perf_counter()
        await conn.execute(SEED_TRANSACTIONS, partner_id, shopper_id, CARD, at, lines)
        await conn.execute("ANALYZE partner_transactions")
        print(f"seeded {lines:,} network transactions in {time.perf_counter() - started:.1f} s")
        rss_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        report = await reconciliation.reconcile(
            conn,
            partner_id=partner_id,
            period_start=at - timedelta(hours=1),
            period_end=at + timedelta(hours=1),
            source_format="csv",
            chunks=partner_file(lines),
        )
        elapsed_s = time.perf_counter() - started
        rss_after_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    finally:
        await conn.close()
    t = report.totals
    print(f"reconciled {t.lines_total:,} lines in {elapsed_s:.1f} s")
    print(
        f"matched {t.matched:,}, missing in network {t.missing_in_network:,}, missing at "
        f"partner {t.missing_at_partner:,}, mismatched points {t.mismatched_points:,}, "
        f"mismatched amount {t.mismatched_amount:,}, duplicates {t.duplicates:,}, "
        f"malformed {t.malformed:,}"
    )
    print(f"peak RSS {rss_before_kib / 1024:.0f} MiB before, {rss_after_kib / 1024:.0f} MiB after")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
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
                await run(dsn, args.lines)
            finally:
                await drop_database(server_dsn, dsn)
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    asyncio.run(main())
