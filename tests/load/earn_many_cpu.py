"""PostgreSQL backend CPU per earn of `ledger.earn_many` (the set-based batch write), for the
migrations before and after 0194 (each earn's ledger.operation row written once, with its
result, instead of claimed bare and UPDATEd), and for `before` with a lower fillfactor on
ledger.operation (the other lever: the same UPDATE, made HOT by free space on the page).

    python tests/load/earn_many_cpu.py [--rounds 3] [--batch 500] [--calls 10] [--fillfactor 50]

Starts a throwaway embedded PostgreSQL (deleted afterwards) and three databases: `before`
(migrations up to 0193), `before_ffN` (the same, then ledger.operation's fillfactor set to N)
and `after` (all migrations). Each gets SHOPPERS shoppers with wallets. Then, round by round
and database by database in turn (ABAB; the order rotates each round), on one connection:
`--calls` transactions of one `ledger.earn_many` call of `--batch` earns (distinct shoppers,
fresh keys, every earn on the set-based path: asserted), reading the backend's CPU time from
/proc before and after (tests/load/earn_cpu.py `backend_cpu_s`). Prints microseconds of backend
CPU and WAL bytes per earn, and ledger.operation's updates, HOT updates and size at the end.

Not a test: it prints numbers for docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from infra import embedded, migrations
from ledger import service as ledger
from tests.load.earn_cpu import backend_cpu_s
from tests.load.ledger_bench import recreate

SHOPPERS = 5_000
PARTNER_ID = 1
LAST_BEFORE = 193  # the last migration of `before`
EARN_MANY = """
SELECT count(*) FROM ledger.earn_many(
    (SELECT array_agg(ROW(r.n, r.k, r.s, $3::bigint, 100, 5000, $4::timestamptz, '{}'::jsonb)
                      ::ledger.earn_request ORDER BY r.n)
     FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS r (k, s, n)),
    (SELECT array_agg(s ORDER BY s) FROM unnest($2::bigint[]) s))
"""
WAL_LSN = "SELECT pg_current_wal_insert_lsn()::text"
WAL_SINCE = "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), $1::text::pg_lsn)"
OPERATION_STATS = """
SELECT n_tup_upd, n_tup_hot_upd, pg_total_relation_size('ledger.operation') AS size_bytes
FROM pg_stat_user_tables WHERE relid = 'ledger.operation'::regclass
"""


async def setup(dsn: str, directory: Path, fillfactor: int | None) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrations.migrate(conn, directory)
        expires_at = datetime.now(UTC) + timedelta(days=365)
        # The single path makes the network and partner accounts the set-based path needs.
        await ledger.earn(
            conn,
            idempotency_key="seed:1",
            shopper_id=1,
            partner_id=PARTNER_ID,
            points=100,
            issue_price_micros=5_000,
            expires_at=expires_at,
            metadata={},
        )
        for first in range(2, SHOPPERS + 1, 1_000):
            shoppers = list(range(first, min(first + 1_000, SHOPPERS + 1)))
            await earn_many(conn, "seed", shoppers)
        if fillfactor is not None:
            await conn.execute(f"ALTER TABLE ledger.operation SET (fillfactor = {fillfactor})")
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def earn_many(conn: asyncpg.Connection, tag: str, shoppers: list[int]) -> None:
    keys = [f"{tag}:{s}" for s in shoppers]
    expires_at = datetime.now(UTC) + timedelta(days=365)
    async with conn.transaction():
        posted = await conn.fetchval(EARN_MANY, keys, shoppers, PARTNER_ID, expires_at)
    assert posted == len(shoppers), f"set-based path: {posted} of {len(shoppers)}"


async def measure(dsn: str, tag: str, batch: int, calls: int) -> tuple[float, float]:
    """(backend CPU µs, WAL bytes) per earn over `calls` earn_many calls of `batch` earns; the
    WAL is the cluster's, in which nothing else runs but autovacuum."""
    conn = await asyncpg.connect(dsn)
    try:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        await earn_many(conn, f"{tag}:warm", list(range(1, batch + 1)))
        wal0 = await conn.fetchval(WAL_LSN)
        cpu0 = backend_cpu_s(pid)
        for call in range(calls):
            first = 1 + (call * batch) % (SHOPPERS - batch)
            await earn_many(conn, f"{tag}:{call}", list(range(first, first + batch)))
        cpu1 = backend_cpu_s(pid)
        wal_bytes = await conn.fetchval(WAL_SINCE, wal0)
    finally:
        await conn.close()
    earns = batch * calls
    return (cpu1 - cpu0) / earns * 1e6, float(wal_bytes) / earns


async def stats(dsn: str) -> asyncpg.Record:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_stat_force_next_flush()")
        row = await conn.fetchrow(OPERATION_STATS)
        assert row is not None
        return row
    finally:
        await conn.close()


async def run(server_dsn: str, rounds: int, batch: int, calls: int, fillfactor: int) -> None:
    assert batch < SHOPPERS, "distinct shoppers per call"
    with tempfile.TemporaryDirectory(prefix="earn-many-cpu-migrations-") as scratch:
        old = Path(scratch)
        for path in sorted(migrations.MIGRATIONS_DIR.glob("*.sql")):
            if int(path.name[:4]) <= LAST_BEFORE:
                shutil.copy(path, old / path.name)
        variants: list[tuple[str, Path, int | None]] = [
            ("before", old, None),
            (f"before_ff{fillfactor}", old, fillfactor),
            ("after", migrations.MIGRATIONS_DIR, None),
        ]
        dsns: dict[str, str] = {}
        for name, directory, ff in variants:
            dsns[name] = await recreate(server_dsn, f"earn_many_cpu_{name}")
            await setup(dsns[name], directory, ff)
    results: dict[str, list[float]] = {name: [] for name in dsns}
    wal: dict[str, list[float]] = {name: [] for name in dsns}
    names = list(dsns)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            cpu, wal_bytes = await measure(dsns[name], f"{name}:{r}", batch, calls)
            results[name].append(cpu)
            wal[name].append(wal_bytes)
            print(
                f"round {r} {name:<12} {cpu:7.1f} µs backend CPU/earn {wal_bytes:7.0f} B WAL/earn",
                flush=True,
            )
    for name, values in results.items():
        s = await stats(dsns[name])
        print(
            f"{name:<12} median {sorted(values)[len(values) // 2]:.1f} best {min(values):.1f}"
            f" µs/earn; WAL median {sorted(wal[name])[len(values) // 2]:.0f} B/earn;"
            f" ledger.operation updates {s['n_tup_upd']} (HOT {s['n_tup_hot_upd']}),"
            f" {s['size_bytes'] // 1024} KiB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--fillfactor", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="earn-many-cpu-") as scratch:
        server = embedded.start(Path(scratch), cleanup_mode="delete")
        try:
            asyncio.run(run(server.dsn, args.rounds, args.batch, args.calls, args.fillfactor))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
