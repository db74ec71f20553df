"""Ledger throughput next to pgbench TPC-B on the same PostgreSQL, in one bounded run.

    python tests/load/ledger_bench.py [--duration-s 10] [--clients 8]

Starts a throwaway embedded PostgreSQL (unix socket, deleted afterwards) unless DATABASE_URL
is set; then creates two scratch databases on that server: one with the migrations applied for
the ledger, one initialised by `pgbench -i`. Runs, for the same duration and client count:
`pgbench` TPC-B (prepared statements), ledger earns (each for a random shopper out of many,
all for one partner), and ledger burns (1 point each from pre-funded shoppers). Reports
operations per second and each ledger figure as a ratio of the TPC-B figure.

Not a test: nothing asserts; it prints numbers for docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from infra import embedded, migrations
from infra.db import Conn
from ledger import service as ledger

DURATION_S_MAX = 120
CLIENTS_MAX = 64
SHOPPERS = 20_000
BURN_SHOPPERS = 2_000
BURN_SHOPPER_BASE = 1_000_000
BURN_FUNDING_POINTS = 1_000_000
PARTNER_ID = 1
PGBENCH_SCALE = 10
TPS_PATTERN = re.compile(r"tps = ([0-9.]+) \(without initial connection time\)")


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


async def recreate(server_dsn: str, database: str) -> str:
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    return with_database(server_dsn, database)


def pgbench(dsn: str, *, clients: int, duration_s: int) -> float:
    binary = shutil.which("pgbench")
    if binary is None:
        raise SystemExit("pgbench not found on PATH")
    subprocess.run(
        [binary, "-i", "-q", "-s", str(PGBENCH_SCALE), dsn], check=True, capture_output=True
    )
    run = subprocess.run(
        [
            binary,
            "-M",
            "prepared",
            "-c",
            str(clients),
            "-j",
            str(min(clients, os.cpu_count() or 1)),
            "-T",
            str(duration_s),
            dsn,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    match = TPS_PATTERN.search(run.stdout)
    if match is None:
        raise SystemExit(f"unexpected pgbench output:\n{run.stdout}\n{run.stderr}")
    return float(match[1])


async def measure(
    pool: asyncpg.Pool,
    *,
    clients: int,
    duration_s: int,
    operation: Callable[[Conn, int, int], Awaitable[object]],
) -> float:
    """Run `operation(conn, client, n)` in a loop on `clients` connections for `duration_s`."""
    deadline = time.monotonic() + duration_s
    counts = [0] * clients

    async def client(index: int) -> None:
        async with pool.acquire() as conn:
            while time.monotonic() < deadline:
                await operation(conn, index, counts[index])
                counts[index] += 1

    started = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return sum(counts) / (time.monotonic() - started)


async def bench(server_dsn: str, *, clients: int, duration_s: int) -> None:
    ledger_dsn = await recreate(server_dsn, "ledger_bench")
    setup = await asyncpg.connect(ledger_dsn)
    try:
        await migrations.migrate(setup)
    finally:
        await setup.close()
    pgbench_dsn = await recreate(server_dsn, "ledger_bench_pgbench")

    tpcb = pgbench(pgbench_dsn, clients=clients, duration_s=duration_s)

    pool = await asyncpg.create_pool(ledger_dsn, min_size=clients, max_size=clients)
    assert pool is not None
    expires_at = datetime.now(UTC) + timedelta(days=365)
    run_id = time.time_ns()

    async def earn(conn: Conn, client: int, n: int) -> object:
        return await ledger.earn(
            conn,
            idempotency_key=f"bench:{run_id}:earn:{client}:{n}",
            shopper_id=random.randint(1, SHOPPERS),
            partner_id=PARTNER_ID,
            points=100,
            issue_price_micros=5_000,
            expires_at=expires_at,
        )

    async def burn(conn: Conn, client: int, n: int) -> object:
        return await ledger.burn(
            conn,
            idempotency_key=f"bench:{run_id}:burn:{client}:{n}",
            # Each client burns from its own shoppers: contention on a wallet is a separate
            # question (see the 200-parallel-burns test), not what this figure measures.
            shopper_id=BURN_SHOPPER_BASE + (n * clients + client) % BURN_SHOPPERS,
            partner_id=PARTNER_ID + 1,
            points=1,
            redemption_price_micros=4_000,
        )

    async def fund(conn: Conn, client: int, n: int) -> object:
        return await ledger.earn(
            conn,
            idempotency_key=f"bench:{run_id}:fund:{n}",
            shopper_id=BURN_SHOPPER_BASE + n,
            partner_id=PARTNER_ID,
            points=BURN_FUNDING_POINTS,
            issue_price_micros=5_000,
            expires_at=expires_at,
        )

    try:
        async with pool.acquire() as conn:
            for n in range(BURN_SHOPPERS):
                await fund(conn, 0, n)
        earns = await measure(pool, clients=clients, duration_s=duration_s, operation=earn)
        burns = await measure(pool, clients=clients, duration_s=duration_s, operation=burn)
        async with pool.acquire() as conn:
            pending = await conn.fetchval("SELECT count(*) FROM ledger.balance_delta")
            fold_started = time.monotonic()
            folded = 0
            while count := await ledger.fold_deltas(conn):
                folded += count
            fold_rate = folded / max(time.monotonic() - fold_started, 1e-9)
            version = await conn.fetchval("SHOW server_version")
    finally:
        await pool.close()

    print(f"PostgreSQL {version}; {clients} clients; {duration_s} s per run; {os.cpu_count()} CPUs")
    print(f"{'workload':<34}{'ops/s':>12}{'x TPC-B':>10}")
    print(f"{'pgbench TPC-B (-M prepared)':<34}{tpcb:>12.0f}{1.0:>10.2f}")
    print(f"{'ledger earn (service API)':<34}{earns:>12.0f}{earns / tpcb:>10.2f}")
    print(f"{'ledger burn (service API)':<34}{burns:>12.0f}{burns / tpcb:>10.2f}")
    print(f"rollup: {pending} deltas queued after the runs, folded at {fold_rate:.0f} deltas/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=int, default=10)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    if not 1 <= args.duration_s <= DURATION_S_MAX or not 1 <= args.clients <= CLIENTS_MAX:
        parser.error(f"--duration-s 1..{DURATION_S_MAX}, --clients 1..{CLIENTS_MAX}")
    configured = os.environ.get("DATABASE_URL")
    if configured:
        asyncio.run(bench(configured, clients=args.clients, duration_s=args.duration_s))
        return
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as scratch:
        server = embedded.start(Path(scratch), cleanup_mode="delete")
        try:
            asyncio.run(bench(server.dsn, clients=args.clients, duration_s=args.duration_s))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
