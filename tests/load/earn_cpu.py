"""PostgreSQL backend CPU per `ledger.earn` (or burn, or hold + capture, or a group commit's
purchase), for the migrations as of two points, back to back.

    python tests/load/earn_cpu.py [--operation earn|burn|hold|purchase-many] [--group 12]
                                   [--before N] [--rounds 2] [--interleave CHUNK] [--functions]

Starts a throwaway embedded PostgreSQL (deleted afterwards) and creates two databases: `before`
migrated with the migrations numbered up to `--before` only, `after` with all of them. For each
round and each database, on one connection: 1,000 warm-up earns, `ANALYZE`, then 3,000 measured
earns (sequential, each its own transaction through `ledger.service.earn`, 2,000 shoppers whose
wallets exist, one partner), reading the backend's CPU time from /proc/<pg_backend_pid()>/schedstat
(or utime + stime from /stat) before and after. Prints microseconds of backend CPU per earn.

With `--operation burn` (default `--before` 0090) the same, for burns of 100 points at one
partner's till: each shopper is also funded, in setup, with three lots of 100,000 points that
expire 200, 300 and 365 days out, so a burn usually consumes one lot and now and then two.
With `--operation hold` (default `--before` 0091) each measured unit is a checkout with a hold:
`ledger.hold` of 100 points, then `ledger.capture` of 90 of them (two transactions), on the
same funded shoppers; the figures are per hold + capture pair.
With `--operation purchase-many` (default `--before` 0182) each measured unit is a purchase
written the way a group commit writes it: `partners.purchase_many.post_plain` (what
gateway/routes/purchases.py hands a group's purchases to) with `--group` purchases of distinct
shoppers per call, each call its own transaction. The partner is made by
`partners.onboarding.create_partner` with the bench's pricing and the shoppers (cards
`card_number(i)` as in the bench) by `partners.operations.enroll_shopper`, one transaction
each; the purchases are the bench's (no basket lines, 500-20,000 minor). No gateway admission
or idempotency record is written around them (those are the same statements with or without
the migration under test). The figures are per purchase.

With `--interleave CHUNK`, each round warms both databases up, then measures them in turns of
CHUNK operations (before, after, before, ...; each backend's CPU read around its own turns), so
both see the same minutes of a shared, noisy machine; without it, one database's whole run
follows the other's.

With `--functions`, one more pass per database with `track_functions = 'all'` prints the self
and total time of each ledger function and trigger function per operation (pg_stat_user_functions;
the timing adds overhead of its own, so read the shares, not the absolute figures).

Not a test: nothing asserts; it prints numbers for docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from contracts.partners import EnrollRequest, PartnerCreate, PurchaseRequest
from gateway.bench._requests import (
    CURRENCY,
    PURCHASE_AMOUNT_MINOR_MAX,
    PURCHASE_AMOUNT_MINOR_MIN,
    card_number,
)
from infra import embedded, migrations
from ledger import service as ledger
from partners import onboarding, purchase_many
from partners import operations as partner_operations
from tests.load.ledger_bench import recreate

WARMUP = 1_000
MEASURED = 3_000
SHOPPERS = 2_000
PARTNER_ID = 1
REDEEMING_PARTNER_ID = 2
FUNDING_LOTS = ((200, 100_000), (300, 100_000), (365, 100_000))  # (days to expiry, points)
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
OPERATIONS = ("earn", "burn", "hold", "purchase-many")
DEFAULT_BEFORE = {"earn": 86, "burn": 90, "hold": 91, "purchase-many": 182}
GROUP_DEFAULT = 12  # purchases per group commit in the bench (docs/performance.md)


def backend_cpu_s(pid: int) -> float:
    """The backend's CPU time: ns-resolution schedstat if there is one, else utime + stime."""
    schedstat = Path(f"/proc/{pid}/schedstat")
    if schedstat.exists():
        return int(schedstat.read_text().split()[0]) / 1e9
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime field 14, stime field 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


async def setup(dsn: str, directory: Path, operation: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await migrations.migrate(conn, directory)
        if operation == "purchase-many":
            await setup_purchases(conn)
            return
        expires_at = datetime.now(UTC) + timedelta(days=365)
        for shopper in range(1, SHOPPERS + 1):
            await ledger.earn(
                conn,
                idempotency_key=f"seed:{shopper}",
                shopper_id=shopper,
                partner_id=PARTNER_ID,
                points=10,
                issue_price_micros=5_000,
                expires_at=expires_at,
            )
            if operation == "earn":
                continue
            for days, points in FUNDING_LOTS:
                await ledger.earn(
                    conn,
                    idempotency_key=f"fund:{shopper}:{days}",
                    shopper_id=shopper,
                    partner_id=PARTNER_ID,
                    points=points,
                    issue_price_micros=5_000,
                    expires_at=datetime.now(UTC) + timedelta(days=days),
                )
    finally:
        await conn.close()


async def setup_purchases(conn: asyncpg.Connection) -> None:
    """One partner with the bench's pricing; SHOPPERS shoppers with the bench's cards."""
    partner = await onboarding.create_partner(
        conn,
        PartnerCreate(
            name="Earn CPU",
            slug="earn-cpu",
            issue_price_micros=10_000,
            redemption_price_micros=8_000,
            earn_points=1,
            earn_spend_minor=100,
        ),
        operator="earn-cpu",
    )
    assert partner.id == PARTNER_ID, partner.id  # the first partner of a fresh database
    for index in range(SHOPPERS):
        async with conn.transaction():
            await partner_operations.enroll_shopper(
                conn, PARTNER_ID, EnrollRequest(card_number=card_number(index))
            )
    # The first earn makes the network's and the partner's ledger accounts (ledger.earn does;
    # the set-based write leaves purchases to the single path until they exist), as the
    # bench's first purchases do.
    seed = PurchaseRequest(
        partner_ref="seed", card_number=card_number(0), amount_minor=1_000, currency=CURRENCY
    )
    async with conn.transaction():
        await partner_operations.purchase(conn, PARTNER_ID, seed, idempotency_key="seed")


async def purchase_groups(conn: asyncpg.Connection, tag: str, numbers: range, group: int) -> None:
    """Purchases `numbers`, `group` per `post_plain` call (the last one may hold fewer), each
    call its own transaction; consecutive purchases name distinct shoppers (7919 is prime to
    SHOPPERS)."""
    assert 0 < group <= SHOPPERS, group
    rng = random.Random(f"{tag}:{numbers.start}")
    for first in range(numbers.start, numbers.stop, group):
        candidates = [
            purchase_many.Candidate(
                handle=n,
                partner_id=PARTNER_ID,
                req=PurchaseRequest(
                    partner_ref=f"{tag}:{n}",
                    card_number=card_number((n * 7919) % SHOPPERS),
                    amount_minor=rng.randint(PURCHASE_AMOUNT_MINOR_MIN, PURCHASE_AMOUNT_MINOR_MAX),
                    currency=CURRENCY,
                ),
                idempotency_key=f"{tag}:{n}",
            )
            for n in range(first, min(first + group, numbers.stop))
        ]
        async with conn.transaction():
            written = await purchase_many.post_plain(conn, candidates)
        unwritten = len(candidates) - len(written)
        assert unwritten == 0, f"{unwritten} purchases not written set-based"


async def operations(
    conn: asyncpg.Connection,
    operation: str,
    tag: str,
    count: int,
    group: int = GROUP_DEFAULT,
    first: int = 0,
) -> None:
    """Operations number `first` .. `first + count - 1` (the number picks the shopper)."""
    if operation == "purchase-many":
        await purchase_groups(conn, tag, range(first, first + count), group)
        return
    expires_at = datetime.now(UTC) + timedelta(days=365)
    for n in range(first, first + count):
        if operation == "hold":
            held = await ledger.hold(
                conn,
                idempotency_key=f"{tag}:{n}:hold",
                shopper_id=1 + (n * 7919) % SHOPPERS,
                partner_id=REDEEMING_PARTNER_ID,
                points=100,
                expires_at=expires_at,
                metadata={"n": n},
            )
            assert held.hold_id is not None
            await ledger.capture(
                conn,
                idempotency_key=f"{tag}:{n}:capture",
                hold_id=held.hold_id,
                points=90,
                redemption_price_micros=4_000,
                metadata={"n": n},
            )
            continue
        if operation == "burn":
            await ledger.burn(
                conn,
                idempotency_key=f"{tag}:{n}",
                shopper_id=1 + (n * 7919) % SHOPPERS,
                partner_id=REDEEMING_PARTNER_ID,
                points=100,
                redemption_price_micros=4_000,
                metadata={"n": n},
            )
            continue
        await ledger.earn(
            conn,
            idempotency_key=f"{tag}:{n}",
            shopper_id=1 + (n * 7919) % SHOPPERS,
            partner_id=PARTNER_ID,
            points=100,
            issue_price_micros=5_000,
            expires_at=expires_at,
            metadata={"n": n},
        )


async def measure(dsn: str, operation: str, tag: str, group: int) -> tuple[float, float]:
    """(backend CPU µs, wall µs) per operation over MEASURED of them after a warm-up."""
    conn = await asyncpg.connect(dsn)
    try:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        await operations(conn, operation, f"{tag}:warm", WARMUP, group)
        await conn.execute("ANALYZE")
        cpu0, wall0 = backend_cpu_s(pid), time.perf_counter()
        await operations(conn, operation, f"{tag}:run", MEASURED, group)
        cpu1, wall1 = backend_cpu_s(pid), time.perf_counter()
    finally:
        await conn.close()
    return (cpu1 - cpu0) / MEASURED * 1e6, (wall1 - wall0) / MEASURED * 1e6


async def measure_interleaved(
    dsns: dict[str, str], operation: str, tag: str, group: int, chunk: int
) -> dict[str, tuple[float, float]]:
    """As `measure`, for every database at once: after each one's warm-up and `ANALYZE`, the
    MEASURED operations go in chunks of `chunk`, one database's chunk after the other's
    (ABAB...), each backend's CPU read around its own chunks; so both share the same minutes
    of a noisy machine."""
    conns = {name: await asyncpg.connect(dsn) for name, dsn in dsns.items()}
    try:
        pids = {
            name: await conn.fetchval("SELECT pg_backend_pid()") for name, conn in conns.items()
        }
        for name, conn in conns.items():
            await operations(conn, operation, f"{tag}:{name}:warm", WARMUP, group)
            await conn.execute("ANALYZE")
        cpu_s = dict.fromkeys(conns, 0.0)
        wall_s = dict.fromkeys(conns, 0.0)
        for first in range(0, MEASURED, chunk):
            count = min(chunk, MEASURED - first)
            for name, conn in conns.items():
                cpu0, wall0 = backend_cpu_s(pids[name]), time.perf_counter()
                await operations(conn, operation, f"{tag}:{name}:run", count, group, first)
                cpu_s[name] += backend_cpu_s(pids[name]) - cpu0
                wall_s[name] += time.perf_counter() - wall0
    finally:
        for conn in conns.values():
            await conn.close()
    return {name: (cpu_s[name] / MEASURED * 1e6, wall_s[name] / MEASURED * 1e6) for name in conns}


FUNCTIONS = """
SELECT schemaname || '.' || funcname AS name, calls, self_time, total_time
FROM pg_stat_user_functions ORDER BY self_time DESC
"""


async def functions(dsn: str, operation: str, tag: str, group: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET track_functions = 'all'")
        await operations(conn, operation, f"{tag}:fwarm", 200, group)
        await conn.execute("SELECT pg_stat_reset()")
        await operations(conn, operation, f"{tag}:frun", MEASURED, group)
        await conn.execute("SELECT pg_stat_force_next_flush()")
        await conn.execute("SELECT 1")
        rows = await conn.fetch(FUNCTIONS)
    finally:
        await conn.close()
    print(f"  {'function':<40}{'calls/' + operation:>11}{'self µs':>10}{'total µs':>10}")
    for r in rows:
        print(
            f"  {r['name']:<40}{r['calls'] / MEASURED:>11.2f}"
            f"{r['self_time'] * 1000 / MEASURED:>10.1f}{r['total_time'] * 1000 / MEASURED:>10.1f}"
        )


async def run(
    server_dsn: str,
    operation: str,
    before: int,
    rounds: int,
    with_functions: bool,
    group: int,
    interleave: int,
) -> None:
    with tempfile.TemporaryDirectory(prefix="earn-cpu-migrations-") as scratch:
        old = Path(scratch)
        for path in sorted(migrations.MIGRATIONS_DIR.glob("*.sql")):
            if int(path.name[:4]) <= before:
                shutil.copy(path, old / path.name)
        dsns = {
            "before": await recreate(server_dsn, "earn_cpu_before"),
            "after": await recreate(server_dsn, "earn_cpu_after"),
        }
        await setup(dsns["before"], old, operation)
        await setup(dsns["after"], migrations.MIGRATIONS_DIR, operation)
    results: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
    for r in range(rounds):
        if interleave:
            measured = await measure_interleaved(dsns, operation, f"i{r}", group, interleave)
        for name, dsn in dsns.items():
            if interleave:
                cpu, wall = measured[name]
            else:
                cpu, wall = await measure(dsn, operation, f"{name}:{r}", group)
            results[name].append((cpu, wall))
            print(
                f"round {r} {name:<7} {cpu:8.1f} µs CPU/{operation}"
                f"  {wall:8.1f} µs wall/{operation}"
            )
    for name, values in results.items():
        best = min(v[0] for v in values)
        print(f"{name:<7} best {best:.1f} µs backend CPU per {operation} over {rounds} round(s)")
    if with_functions:
        for name, dsn in dsns.items():
            print(f"{name}: per-function times (track_functions = 'all')")
            await functions(dsn, operation, f"{name}:f", group)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operation", choices=OPERATIONS, default="earn")
    parser.add_argument(
        "--before",
        type=int,
        default=None,
        help="last migration of `before` (default: 86 for earn, 90 for burn, 91 for hold, "
        "182 for purchase-many)",
    )
    parser.add_argument(
        "--group", type=int, default=GROUP_DEFAULT, help="purchases per call (purchase-many)"
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--interleave",
        type=int,
        default=0,
        metavar="CHUNK",
        help="measure both databases in alternating chunks of CHUNK operations (0: one "
        "database's run after the other's)",
    )
    parser.add_argument("--functions", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="earn-cpu-") as scratch:
        server = embedded.start(Path(scratch), cleanup_mode="delete")
        try:
            before = args.before
            if before is None:
                before = DEFAULT_BEFORE[args.operation]
            asyncio.run(
                run(
                    server.dsn,
                    args.operation,
                    before,
                    args.rounds,
                    args.functions,
                    args.group,
                    args.interleave,
                )
            )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
