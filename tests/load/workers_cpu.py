"""PostgreSQL backend CPU per purchase of each background job that runs under purchase load.

    python tests/load/workers_cpu.py [--purchases 20000] [--before 0182] [--functions]
    python tests/load/workers_cpu.py --steady-s 30 [--steady-ab --before 0182]

Starts a throwaway embedded PostgreSQL (deleted afterwards) and creates two databases: `before`
migrated with the migrations numbered up to `--before` only, `after` with all of them. Each gets
10 partners (the bench's pricing) and 100,000 shoppers with cards, enrolled one transaction each
by `partners.operations.enroll_shopper` (what POST /v1/shoppers runs; there is no server here,
so no stored idempotent answer beside them), by partner i mod 10 like the bench's, then
`--purchases` purchases through `partners.operations.purchase` (each its own transaction, no
workers running: the jobs' queues fill up), then `ANALYZE`. Each job then runs alone over the
whole backlog on one fresh connection, as the worker calls it, until it returns 0 (drained):
`ledger.fold_deltas`, `ledger.seal_blocks`, `shoppers.refresh_aggregates`. Prints the backend's
CPU (/proc/<pg_backend_pid()>/schedstat, or utime + stime) in microseconds per purchase folded.

The Python side is whatever this checkout has (both databases use it); `before` and `after`
differ only in the migrations. That Python needs the tables of every migration up to 0182
(challenges, memberships, ...), so `--before` is at least 0182: the script A/Bs migrations added
after it. With `--functions`, `track_functions = 'all'` is on for the job connections and the
function times per purchase are printed too. `--steady-s` runs purchases and the jobs side by
side at the scheduler's cadence (see `steady`); with `--steady-ab`, in `before` and `after`.

Not a test: nothing asserts; it prints numbers for docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from contracts.partners import EnrollRequest, PartnerCreate, PurchaseRequest
from gateway import workers
from gateway.bench._cli import process_tree_cpu_s
from gateway.bench._requests import card_number
from infra import embedded, migrations
from ledger import service as ledger
from partners import onboarding, operations
from shoppers import aggregates
from tests.load.earn_cpu import backend_cpu_s
from tests.load.ledger_bench import recreate

PARTNERS = 10
SHOPPERS = 100_000
WRITERS = 4
BEFORE_MIN = 182  # the newest migration the setup's Python needs

Job = Callable[[asyncpg.Connection], Awaitable[int]]


async def _fold_deltas(conn: asyncpg.Connection) -> int:
    return await ledger.fold_deltas(conn)


async def _seal_blocks(conn: asyncpg.Connection) -> int:
    return await ledger.seal_blocks(conn)


async def _refresh_aggregates(conn: asyncpg.Connection) -> int:
    folded = 0
    for _ in range(aggregates.FOLD_BATCHES_PER_RUN_MAX):
        n = await aggregates.fold_once(conn)
        folded += n
        if n < aggregates.FOLD_BATCH_MAX:
            break
    await conn.fetchrow("SELECT 1")  # the lag query is cheap; keep the shape of a run
    return folded


JOBS: dict[str, Job] = {
    "ledger.fold_deltas": _fold_deltas,
    "ledger.seal_blocks": _seal_blocks,
    "shoppers.refresh_aggregates": _refresh_aggregates,
}


async def enroll_all(dsn: str, partner_ids: list[int]) -> None:
    """Shopper i, card card_number(i), enrolled by partner i mod PARTNERS, WRITERS at once."""

    async def writer(w: int) -> None:
        c = await asyncpg.connect(dsn)
        try:
            for i in range(w, SHOPPERS, WRITERS):
                req = EnrollRequest(card_number=card_number(i))
                async with c.transaction():
                    await operations.enroll_shopper(c, partner_ids[i % PARTNERS], req)
        finally:
            await c.close()

    await asyncio.gather(*(writer(w) for w in range(WRITERS)))


async def setup(dsn: str, directory: Path, purchases: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrations.migrate(conn, directory)
        partner_ids = []
        for index in range(PARTNERS):
            partner = await onboarding.create_partner(
                conn,
                PartnerCreate(
                    name=f"Bench {index}",
                    slug=f"bench-{index}",
                    issue_price_micros=10_000,
                    redemption_price_micros=8_000,
                    earn_points=1,
                    earn_spend_minor=100,
                ),
                operator="workers-cpu",
            )
            partner_ids.append(partner.id)
    finally:
        await conn.close()
    await enroll_all(dsn, partner_ids)

    rng = random.Random(7)
    plan = [
        (partner_ids[n % PARTNERS], card_number(rng.randrange(SHOPPERS)), rng.randint(500, 20_000))
        for n in range(purchases)
    ]

    async def writer(w: int) -> None:
        c = await asyncpg.connect(dsn)
        try:
            for n in range(w, purchases, WRITERS):
                partner_id, card, amount = plan[n]
                req = PurchaseRequest(
                    partner_ref=f"p-{n}", card_number=card, amount_minor=amount, currency="EUR"
                )
                async with c.transaction():
                    await operations.purchase(c, partner_id, req, idempotency_key=f"k-{n}")
        finally:
            await c.close()

    await asyncio.gather(*(writer(w) for w in range(WRITERS)))
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def measure(dsn: str, purchases: int, with_functions: bool) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, job in JOBS.items():
        conn = await asyncpg.connect(dsn)
        try:
            if with_functions:
                await conn.execute("SET track_functions = 'all'")
                await conn.execute("SELECT pg_stat_reset()")
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            await conn.fetchval("SELECT 1")
            cpu0, wall0 = backend_cpu_s(pid), time.perf_counter()
            runs = folded = 0
            while (n := await job(conn)) > 0:
                runs += 1
                folded += n
            cpu1, wall1 = backend_cpu_s(pid), time.perf_counter()
            us = (cpu1 - cpu0) / purchases * 1e6
            out[name] = us
            print(
                f"  {name:<28} {us:7.1f} µs CPU/purchase  {(wall1 - wall0) / purchases * 1e6:7.1f}"
                f" µs wall/purchase  ({runs} runs, {folded} items)"
            )
            if with_functions:
                # A backend flushes its pending stats at the end of a transaction, at most once
                # a second: wait, end one, then read.
                await asyncio.sleep(1.1)
                await conn.execute("SELECT 1")
                rows = await conn.fetch(
                    "SELECT schemaname || '.' || funcname AS f, calls, self_time, total_time"
                    " FROM pg_stat_user_functions ORDER BY total_time DESC LIMIT 6"
                )
                for r in rows:
                    print(
                        f"      {r['f']:<44} calls {r['calls']:>7}  self"
                        f" {r['self_time'] / purchases * 1e3:7.1f} µs  total"
                        f" {r['total_time'] / purchases * 1e3:7.1f} µs per purchase"
                    )
        finally:
            await conn.close()
    return out


async def steady(dsn: str, postmaster: int, seconds: float, jobs_on: bool) -> None:
    """Purchases from WRITERS connections for `seconds`, with the jobs running beside them as
    the scheduler runs them (`workers.Job.again_at_once`: a run that did not fill its batch
    sleeps the job's interval, so each run folds what queued meanwhile), then the
    jobs drain what is left. Prints backend CPU per purchase: writers, each job, and the whole
    PostgreSQL process tree (autovacuum, WAL writer and checkpointer included)."""
    scheduled = {job.name: job for job in workers.default_jobs() if job.name in JOBS}
    assert scheduled.keys() == JOBS.keys(), scheduled.keys()
    stop = asyncio.Event()
    count = 0
    cpu: dict[str, float] = {}
    runs: dict[str, int] = {}
    setup_conn = await asyncpg.connect(dsn)
    partner_ids = [r["id"] for r in await setup_conn.fetch("SELECT id FROM partners ORDER BY id")]
    await setup_conn.close()
    rng = random.Random(11)

    async def writer(w: int) -> None:
        nonlocal count
        c = await asyncpg.connect(dsn)
        pid = await c.fetchval("SELECT pg_backend_pid()")
        start = backend_cpu_s(pid)
        n = 0
        try:
            while not stop.is_set():
                n += 1
                req = PurchaseRequest(
                    partner_ref=f"s{w}-{n}-{time.monotonic_ns()}",
                    card_number=card_number(rng.randrange(SHOPPERS)),
                    amount_minor=rng.randint(500, 20_000),
                    currency="EUR",
                )
                async with c.transaction():
                    await operations.purchase(
                        c, partner_ids[n % PARTNERS], req, idempotency_key=req.partner_ref
                    )
                count += 1
            cpu[f"writer{w}"] = backend_cpu_s(pid) - start
        finally:
            await c.close()

    async def jobloop(name: str, job: Job) -> None:
        c = await asyncpg.connect(dsn)
        pid = await c.fetchval("SELECT pg_backend_pid()")
        start = backend_cpu_s(pid)
        try:
            while not stop.is_set():
                runs[name] = runs.get(name, 0) + 1
                if not scheduled[name].again_at_once(await job(c)):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), scheduled[name].interval_s)
            while await job(c) > 0:  # drain: the cost of what was queued is counted
                pass
            cpu[name] = backend_cpu_s(pid) - start
        finally:
            await c.close()

    tree0 = process_tree_cpu_s(postmaster) or 0.0
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(writer(w)) for w in range(WRITERS)]
    if jobs_on:
        tasks += [asyncio.create_task(jobloop(name, job)) for name, job in JOBS.items()]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    tree = (process_tree_cpu_s(postmaster) or 0.0) - tree0
    label = "jobs on" if jobs_on else "jobs off"
    print(f"steady, {label}: {count} purchases in {wall:.1f} s ({count / wall:.0f}/s)")
    writers_s = sum(v for k, v in cpu.items() if k.startswith("writer"))
    print(f"  writers' backends   {writers_s / count * 1e6:7.1f} µs CPU/purchase")
    for name in JOBS:
        if name in cpu:
            print(
                f"  {name:<28} {cpu[name] / count * 1e6:7.1f} µs CPU/purchase"
                f"  ({runs[name]} runs, {cpu[name] / runs[name] * 1e3:.2f} ms CPU/run)"
            )
    print(f"  PostgreSQL tree     {tree / count * 1e6:7.1f} µs CPU/purchase")


async def run(server_dsn: str, before: int, purchases: int, with_functions: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="workers-cpu-migrations-") as scratch:
        old = await _migrated_copy(Path(scratch), before)
        dsns = {
            "before": await recreate(server_dsn, "workers_cpu_before"),
            "after": await recreate(server_dsn, "workers_cpu_after"),
        }
        await setup(dsns["before"], old, purchases)
        await setup(dsns["after"], migrations.MIGRATIONS_DIR, purchases)
    for name, dsn in dsns.items():
        print(f"{name} ({purchases} purchases drained):")
        await measure(dsn, purchases, with_functions)


async def _migrated_copy(scratch: Path, before: int) -> Path:
    """A directory holding the migrations numbered up to `before`."""
    for path in sorted(migrations.MIGRATIONS_DIR.glob("*.sql")):
        if int(path.name[:4]) <= before:
            shutil.copy(path, scratch / path.name)
    return scratch


async def _drain(dsn: str, *, vacuum: bool) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for job in JOBS.values():
            while await job(conn) > 0:
                pass
        if vacuum:
            await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def run_steady(
    server_dsn: str, scratch: Path, purchases: int, seconds: float, before: int | None
) -> None:
    """Jobs off, on, off, on in one database; with `before`, jobs on in `before` and `after`
    databases alternately (ABBA), to A/B migrations at the scheduler's cadence."""
    postmaster = int((scratch / "pgdata" / "postmaster.pid").read_text().split()[0])
    if before is None:
        dsn = await recreate(server_dsn, "workers_cpu_steady")
        await setup(dsn, migrations.MIGRATIONS_DIR, purchases)
        await _drain(dsn, vacuum=True)  # start from empty queues
        for jobs_on in (False, True, False, True):
            await steady(dsn, postmaster, seconds, jobs_on)
            await _drain(dsn, vacuum=False)
        return
    with tempfile.TemporaryDirectory(prefix="workers-cpu-migrations-") as old:
        dsns = {
            "before": await recreate(server_dsn, "workers_cpu_before"),
            "after": await recreate(server_dsn, "workers_cpu_after"),
        }
        await setup(dsns["before"], await _migrated_copy(Path(old), before), purchases)
        await setup(dsns["after"], migrations.MIGRATIONS_DIR, purchases)
    for dsn in dsns.values():
        await _drain(dsn, vacuum=True)
    for name in ("before", "after", "after", "before"):
        print(f"{name}:")
        await steady(dsns[name], postmaster, seconds, jobs_on=True)
        await _drain(dsns[name], vacuum=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=int, default=BEFORE_MIN, help="last migration of `before`")
    parser.add_argument("--purchases", type=int, default=20_000)
    parser.add_argument("--functions", action="store_true")
    parser.add_argument("--steady-s", type=float, default=0.0, help="steady-state mode")
    parser.add_argument(
        "--steady-ab", action="store_true", help="steady state in `before` and `after`, ABBA"
    )
    args = parser.parse_args()
    if args.before < BEFORE_MIN:
        parser.error(
            f"--before must be at least {BEFORE_MIN:04d}: this checkout's Python needs its tables"
        )
    with tempfile.TemporaryDirectory(prefix="workers-cpu-") as scratch:
        server = embedded.start(Path(scratch), cleanup_mode="delete")
        try:
            if args.steady_s:
                before = args.before if args.steady_ab else None
                asyncio.run(
                    run_steady(server.dsn, Path(scratch), args.purchases, args.steady_s, before)
                )
            else:
                asyncio.run(run(server.dsn, args.before, args.purchases, args.functions))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
