"""Scale checks of the ledger (issue 7): settlement close, verify and balance reads over a
large, valid journal, in one bounded run.

    nice -n 19 .venv/bin/python -m tests.load.scale_ledger --postings 10000000 [--deadline-min 25]

Starts a throwaway embedded PostgreSQL (deleted afterwards; niced with this process) unless
DATABASE_URL is set, applies the migrations to a scratch database, then:

1. **Generates** `--postings` postings as earn entries (4 postings each: shopper wallet,
   network:points_issued, the partner's settlement account, network:deferred_revenue; one lot
   per entry), with set-based SQL, one transaction per `--batch-entries` entries. **Every
   ledger trigger stays enabled**: postings are inserted in their entry's transaction
   (`posting_in_entry_tx` checks each row) and `entry_balanced` checks every entry at commit.
   Rollup postings are folded straight into `ledger.account_balance`, except the last
   `--backlog-entries` entries, whose deltas stay queued in `ledger.balance_delta` (the unfolded
   backlog). One shopper (id 1) gets `--whale-postings` earns; the rest spread over
   `--shoppers`. Every entry is queued for sealing and then sealed with the project's own
   `ledger.service.seal_blocks` (the worker's code: Python hashes every entry). Autovacuum
   runs as configured during the load, and the bulk-loaded tables are analyzed once after the
   first batch (what autovacuum does mid-load, whatever its timing); at the end the ledger's
   tables and the still-empty `settlement.entry_period` are analyzed, as `vacuumdb --analyze`
   of a fresh or restored database before its first close would.
2. **Measures**: the balance reads (p50/p99 of `ledger.service.balance` and `wallet_summary` of
   the 100,000-posting shopper; partner and network exact balances with the backlog, then after
   folding it), closing one settlement period over the whole journal
   (`ledger.settlement.settle_until`), `ledger.verify.verify` and
   `ledger.settlement.verify_settlements` (both must find nothing, or the run fails).

Reports durations and peak RSS of this process and of every PostgreSQL process (sampled every
0.5 s), as a table and as one JSON line. With `--compare-verify DIR` (another checkout, e.g.
/work/main; repeatable), verify then runs `--compare-rounds` times as that checkout's and as
this one's `ledger.verify`, alternately (A B A B), each in a fresh process
(`tests.load.verify_rss`) against the same journal, so each time and peak RSS belongs to one
implementation.
Stops by itself at `--deadline-min`.
Not a test: nothing runs under pytest; it prints numbers for docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from infra import embedded, migrations
from ledger import service as ledger
from ledger import settlement, verify
from tests.load.ledger_bench import recreate

THIS_CHECKOUT = Path(__file__).resolve().parents[2]
POSTINGS_PER_ENTRY = 4
PARTNERS = 10
ISSUE_PRICE_MICROS = 5_000
SPAN_DAYS = 30
READ_SAMPLES = 2_000
DATABASE = "scale_ledger"
BULK_TABLES = ("entry", "posting", "lot", "seal_queue")

CREATE_BATCH_TABLE = """
CREATE TEMP TABLE scale_batch (
    entry_id bigint, shopper_id bigint, partner_id bigint, points bigint,
    created_at timestamptz, expires_at timestamptz
) ON COMMIT DELETE ROWS
"""

# $1..$2: entry numbers; $3: every $3-th entry is the whale's; $4: shoppers; $5: journal
# start; $6: microseconds between two entries.
INSERT_ENTRIES = f"""
WITH src AS (
    SELECT g,
           CASE WHEN g % $3 = 0 THEN 1 ELSE 2 + g % ($4 - 1) END AS shopper_id,
           1 + g % {PARTNERS} AS partner_id,
           10 + g % 90 AS points,
           $5::timestamptz + make_interval(secs => (g * $6)::double precision / 1e6)
               AS created_at
    FROM generate_series($1::bigint, $2::bigint) g
), src2 AS (
    SELECT *, created_at + make_interval(days => (31 + g % 365)::int) AS expires_at FROM src
), ins AS (
    INSERT INTO ledger.entry (kind, idempotency_key, shopper_id, partner_id, args, created_at)
    SELECT 'earn', 'scale:' || g, shopper_id, partner_id,
           jsonb_build_object('shopper_id', shopper_id, 'partner_id', partner_id,
                              'points', points, 'issue_price_micros', {ISSUE_PRICE_MICROS},
                              'expires_at', ledger._ts(expires_at), 'metadata', '{{}}'::jsonb),
           created_at
    FROM src2 ORDER BY g
    RETURNING entry_id, shopper_id, partner_id, (args->>'points')::bigint AS points,
              created_at, (args->>'expires_at')::timestamptz AS expires_at
)
INSERT INTO scale_batch SELECT * FROM ins
"""
INSERT_SEAL_QUEUE = "INSERT INTO ledger.seal_queue (entry_id) SELECT entry_id FROM scale_batch"
INSERT_POSTINGS = f"""
INSERT INTO ledger.posting (entry_id, account_id, asset, amount, created_at)
SELECT b.entry_id, v.account_id, v.asset, v.amount, b.created_at
FROM scale_batch b
JOIN ledger.wallet w ON w.shopper_id = b.shopper_id
JOIN ledger.account pa ON pa.owner_kind = 'partner' AND pa.owner_id = b.partner_id
     AND pa.purpose = 'settlement'
CROSS JOIN LATERAL (VALUES
    (1, w.wallet_account_id, 'PTS', b.points),
    (2, $1::bigint, 'PTS', -b.points),
    (3, pa.account_id, pa.asset, b.points * {ISSUE_PRICE_MICROS}),
    (4, $2::bigint, pa.asset, -b.points * {ISSUE_PRICE_MICROS})
) v(n, account_id, asset, amount)
ORDER BY b.entry_id, v.n
"""
ROLLUP_OF_BATCH = """
SELECT p.account_id, p.entry_id, p.amount FROM ledger.posting p
JOIN ledger.account a ON a.account_id = p.account_id AND a.rollup
WHERE p.entry_id BETWEEN (SELECT min(entry_id) FROM scale_batch)
                     AND (SELECT max(entry_id) FROM scale_batch)
"""
QUEUE_DELTAS = f"""
INSERT INTO ledger.balance_delta (account_id, entry_id, amount)
SELECT account_id, entry_id, amount FROM ({ROLLUP_OF_BATCH}) r ORDER BY entry_id
"""
FOLD_BATCH = f"""
INSERT INTO ledger.account_balance AS ab (account_id, balance)
SELECT account_id, sum(amount)::bigint FROM ({ROLLUP_OF_BATCH}) r GROUP BY account_id
ORDER BY account_id
ON CONFLICT (account_id) DO UPDATE SET balance = ab.balance + EXCLUDED.balance
"""
INSERT_LOTS = f"""
INSERT INTO ledger.lot (shopper_id, lot_id, root_lot_id, entry_id, partner_id,
                        issue_price_micros, origin, earned_at, expires_at, points, remaining)
SELECT shopper_id, lot_id, lot_id, entry_id, partner_id, {ISSUE_PRICE_MICROS}, 'earn',
       created_at, expires_at, points, points
FROM (SELECT *, nextval('ledger.lot_id_seq') AS lot_id FROM scale_batch ORDER BY entry_id) b
"""
CREATE_SHOPPER_ACCOUNTS = """
INSERT INTO ledger.account (owner_kind, owner_id, purpose, asset, floor_rule, rollup)
SELECT 'shopper', s, p.purpose, 'PTS', p.floor_rule, false
FROM generate_series(1, $1::bigint) s
CROSS JOIN (VALUES ('wallet', 'non_negative_except_clawback'), ('held', 'non_negative'))
     p(purpose, floor_rule)
"""
CREATE_WALLETS = """
INSERT INTO ledger.wallet (shopper_id, wallet_account_id, held_account_id)
SELECT w.owner_id, w.account_id, h.account_id
FROM ledger.account w
JOIN ledger.account h ON h.owner_kind = 'shopper' AND h.owner_id = w.owner_id
     AND h.purpose = 'held'
WHERE w.owner_kind = 'shopper' AND w.purpose = 'wallet'
"""
SET_WALLETS = """
UPDATE ledger.wallet w SET available = s.points
FROM (SELECT shopper_id, sum(remaining)::bigint AS points FROM ledger.lot GROUP BY shopper_id) s
WHERE w.shopper_id = s.shopper_id
"""


@dataclass
class RssSampler:
    """Samples this process and every process of the PostgreSQL cluster every 0.5 s."""

    postmaster_pid: int | None
    python_peak: int = 0
    pg_backend_peak: int = 0
    pg_total_peak: int = 0
    stop_event: threading.Event = field(default_factory=threading.Event)

    def _pg_processes(self) -> list[psutil.Process]:
        if self.postmaster_pid is None:
            return []
        try:
            master = psutil.Process(self.postmaster_pid)
            return [master, *master.children(recursive=True)]
        except psutil.Error:
            return []

    def sample(self) -> None:
        self.python_peak = max(self.python_peak, psutil.Process().memory_info().rss)
        total = 0
        for proc in self._pg_processes():
            try:
                rss = int(proc.memory_info().rss)
            except psutil.Error:
                continue
            total += rss
            if proc.pid != self.postmaster_pid:
                self.pg_backend_peak = max(self.pg_backend_peak, rss)
        self.pg_total_peak = max(self.pg_total_peak, total)

    def run(self) -> None:
        while not self.stop_event.wait(0.5):
            self.sample()

    def renice(self, value: int) -> None:
        for proc in self._pg_processes():
            with contextlib.suppress(psutil.Error):
                proc.nice(max(value, proc.nice()))

    def snapshot(self) -> dict[str, float]:
        mib = 1024 * 1024
        return {
            "python_rss_peak_mib": round(self.python_peak / mib, 1),
            "python_maxrss_mib": round(
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
            ),
            "pg_backend_rss_peak_mib": round(self.pg_backend_peak / mib, 1),
            "pg_cluster_rss_peak_mib": round(self.pg_total_peak / mib, 1),
        }


class DeadlineExceeded(Exception):
    pass


@dataclass
class Run:
    deadline: float
    sampler: RssSampler
    steps: list[dict[str, Any]] = field(default_factory=list)

    def left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded("hard stop reached")
        return left

    def record(self, step: str, seconds: float, **extra: Any) -> None:
        self.sampler.sample()
        row = {"step": step, "seconds": round(seconds, 2), **extra, **self.sampler.snapshot()}
        self.steps.append(row)
        print(json.dumps(row), flush=True)


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 3),
        "max_ms": round(ordered[-1] * 1000, 3),
    }


async def timed_reads(conn: Any, call: Any, samples: int) -> dict[str, float]:
    took: list[float] = []
    for _ in range(samples):
        started = time.perf_counter()
        await call(conn)
        took.append(time.perf_counter() - started)
    return percentiles(took)


async def generate(conn: asyncpg.Connection, args: argparse.Namespace, run: Run) -> int:
    entries = args.postings // POSTINGS_PER_ENTRY
    whale_every = max(entries // args.whale_postings, 1)
    started = time.monotonic()
    await conn.execute(CREATE_SHOPPER_ACCOUNTS, args.shoppers)
    await conn.execute(CREATE_WALLETS)
    for p in range(1, PARTNERS + 1):
        await conn.execute("SELECT ledger._account('partner', $1, 'settlement')", p)
    issued = await conn.fetchval("SELECT (ledger._network('points_issued')).account_id")
    deferred = await conn.fetchval("SELECT (ledger._network('deferred_revenue')).account_id")
    # Autovacuum stays on. Its ANALYZE of ledger.entry mid-load once made the guard trigger
    # quadratic in a bulk transaction (it looked entries up through the txid index; by
    # primary key since migration 0081), so the load ran with autovacuum off on these tables.
    # Whether autovacuum gets there during a short load is a matter of timing: the same
    # ANALYZE runs after the first batch, so every later batch runs on those statistics.
    await conn.execute(CREATE_BATCH_TABLE)
    await conn.execute("SET synchronous_commit = off")
    journal_start = datetime.now(UTC) - timedelta(days=SPAN_DAYS + 1)
    step_us = SPAN_DAYS * 86_400 * 1_000_000 // max(entries, 1)
    backlog_from = entries - args.backlog_entries + 1
    lo = 1
    while lo <= entries:
        run.left()
        hi = min(lo + args.batch_entries - 1, entries)
        if lo < backlog_from <= hi:
            hi = backlog_from - 1
        async with conn.transaction():
            await conn.execute(
                INSERT_ENTRIES, lo, hi, whale_every, args.shoppers, journal_start, step_us
            )
            await conn.execute(INSERT_SEAL_QUEUE)
            await conn.execute(INSERT_POSTINGS, issued, deferred)
            await conn.execute(QUEUE_DELTAS if lo >= backlog_from else FOLD_BATCH)
            await conn.execute(INSERT_LOTS)
        if lo == 1:
            for table in BULK_TABLES:
                await conn.execute(f"ANALYZE ledger.{table}")
        if (hi // args.batch_entries) % 10 == 0 or hi == entries:
            rate = hi * POSTINGS_PER_ENTRY / (time.monotonic() - started)
            print(f"  {hi * POSTINGS_PER_ENTRY:,} postings, {rate:,.0f}/s", flush=True)
        lo = hi + 1
    await conn.execute(SET_WALLETS)
    # Statistics everywhere the close reads or writes, including those of the still-empty
    # settlement.entry_period: they once planned the close's stamping as a nested loop anti
    # join over a seq scan of that table, quadratic in the entries stamped (STAMP_ENTRIES now
    # inserts ON CONFLICT DO NOTHING). The close is measured in that worst case.
    for table in (*BULK_TABLES, "wallet", "account", "balance_delta"):
        await conn.execute(f"ANALYZE ledger.{table}")
    await conn.execute("ANALYZE settlement.entry_period")
    postings = await conn.fetchval("SELECT count(*) FROM ledger.posting")
    whale = await conn.fetchval(
        "SELECT count(*) FROM ledger.posting WHERE account_id = "
        "(SELECT wallet_account_id FROM ledger.wallet WHERE shopper_id = 1)"
    )
    backlog = await conn.fetchval("SELECT count(*) FROM ledger.balance_delta")
    size = await conn.fetchval("SELECT pg_size_pretty(pg_database_size(current_database()))")
    seconds = time.monotonic() - started
    run.record(
        "generate",
        seconds,
        postings=postings,
        entries=entries,
        postings_per_s=round(postings / seconds),
        whale_wallet_postings=whale,
        unfolded_deltas=backlog,
        database_size=size,
    )
    return int(postings)


async def seal(conn: asyncpg.Connection, run: Run) -> None:
    started = time.monotonic()
    sealed = 0
    while True:
        run.left()
        n = await ledger.seal_blocks(conn)
        if n == 0:
            break
        sealed += n
    seconds = time.monotonic() - started
    run.record("seal_blocks (worker code)", seconds, entries=sealed, per_s=round(sealed / seconds))


async def balance_reads(conn: asyncpg.Connection, run: Run, *, label: str) -> None:
    now = datetime.now(UTC)
    backlog = await conn.fetchval("SELECT count(*) FROM ledger.balance_delta")
    for name, call in (
        ("balance shopper:1:wallet", lambda c: ledger.balance(c, "shopper:1:wallet")),
        ("wallet_summary shopper 1", lambda c: ledger.wallet_summary(c, shopper_id=1, now=now)),
        ("balance partner:1:settlement", lambda c: ledger.balance(c, "partner:1:settlement")),
        ("balance network:points_issued", lambda c: ledger.balance(c, "network:points_issued")),
    ):
        run.left()
        started = time.monotonic()
        figures = await timed_reads(conn, call, READ_SAMPLES)
        run.record(
            f"{name} ({label})",
            time.monotonic() - started,
            samples=READ_SAMPLES,
            unfolded_deltas=backlog,
            **figures,
        )


async def bench(server_dsn: str, args: argparse.Namespace, run: Run) -> dict[str, Any]:
    dsn = await recreate(server_dsn, DATABASE)
    conn = await asyncpg.connect(dsn)
    try:
        await migrations.migrate(conn)
        version = await conn.fetchval("SHOW server_version")
        postings = await generate(conn, args, run)
        await seal(conn, run)
        await balance_reads(conn, run, label="backlog")
        started = time.monotonic()
        folded = 0
        while n := await ledger.fold_deltas(conn):
            folded += n
        run.record("fold the backlog", time.monotonic() - started, deltas=folded)
        await balance_reads(conn, run, label="folded")
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        assert pool is not None
        try:
            now = datetime.now(UTC)
            until = now.replace(microsecond=0) - timedelta(seconds=1)
            started = time.monotonic()
            summary = await asyncio.wait_for(
                settlement.settle_until(pool, until, now=now), timeout=run.left()
            )
            stamped = await conn.fetchval("SELECT count(*) FROM settlement.entry_period")
            run.record(
                "settle_until: close one period",
                time.monotonic() - started,
                periods=len(summary.closed_period_ids),
                entries_stamped=stamped,
                postings=postings,
            )
        finally:
            await pool.close()
        started = time.monotonic()
        problems = await asyncio.wait_for(verify.verify(conn), timeout=run.left())
        run.record("ledger.verify.verify", time.monotonic() - started, problems=len(problems))
        started = time.monotonic()
        settle_problems = await asyncio.wait_for(
            settlement.verify_settlements(conn), timeout=run.left()
        )
        run.record(
            "settlement.verify_settlements",
            time.monotonic() - started,
            problems=len(settle_problems),
        )
        if args.compare_verify:
            await compare_verify(dsn, args, run)
        for problem in problems[:10]:
            print(f"PROBLEM {problem.check}: {problem.detail}", flush=True)
        for text in settle_problems[:10]:
            print(f"PROBLEM {text}", flush=True)
        return {
            "ok": not problems and not settle_problems,
            "postgres": version,
            "postings": postings,
        }
    finally:
        await conn.close()


async def compare_verify(dsn: str, args: argparse.Namespace, run: Run) -> None:
    """A B A B: the other checkouts' verify, then this one's, each in a fresh process."""
    for round_no in range(1, args.compare_rounds + 1):
        for checkout in (*args.compare_verify, THIS_CHECKOUT):
            run.left()
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.load.verify_rss",
                "--dsn",
                dsn,
                "--checkout",
                str(checkout),
                stdout=asyncio.subprocess.PIPE,
                cwd=THIS_CHECKOUT,  # tests.load.verify_rss is this checkout's
            )
            out, _ = await asyncio.wait_for(child.communicate(), timeout=run.left())
            if child.returncode != 0:
                raise RuntimeError(f"verify_rss {checkout} exited {child.returncode}")
            figures = json.loads(out.decode().strip().splitlines()[-1])
            run.record(
                f"verify in a fresh process, round {round_no}: {checkout}",
                figures.pop("seconds"),
                **{f"child_{key}": value for key, value in figures.items()},
            )


def postmaster_of(server: embedded.EmbeddedPostgres | None) -> int | None:
    if server is None:
        return None
    pid_file = server.pgdata / "postmaster.pid"
    return int(pid_file.read_text().splitlines()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postings", type=int, default=10_000_000)
    parser.add_argument("--shoppers", type=int, default=100_000)
    parser.add_argument("--whale-postings", type=int, default=100_000)
    parser.add_argument("--backlog-entries", type=int, default=10_000)
    parser.add_argument("--batch-entries", type=int, default=25_000)
    parser.add_argument("--deadline-min", type=float, default=25.0)
    parser.add_argument("--nice", type=int, default=19)
    parser.add_argument(
        "--compare-verify", type=Path, action="append", default=[], help="another checkout"
    )
    parser.add_argument("--compare-rounds", type=int, default=2)
    args = parser.parse_args()
    entries = args.postings // POSTINGS_PER_ENTRY
    if not 1_000 <= args.postings <= 40_000_000 or not 2 <= args.shoppers <= 10_000_000:
        parser.error("--postings 1,000..40,000,000, --shoppers 2..10,000,000")
    if not 0 <= args.backlog_entries < entries or not 1 <= args.whale_postings <= entries:
        parser.error("--backlog-entries below the entry count; --whale-postings 1..entries")
    if not 0 < args.deadline_min <= 120:
        parser.error("--deadline-min 0..120")
    os.nice(args.nice)  # the embedded cluster, started below, inherits it
    deadline = time.monotonic() + args.deadline_min * 60
    configured = os.environ.get("DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="scale-ledger-") as scratch:
        server = None if configured else embedded.start(Path(scratch), cleanup_mode="delete")
        sampler = RssSampler(postmaster_of(server))
        sampler.renice(args.nice)
        thread = threading.Thread(target=sampler.run, daemon=True)
        thread.start()
        run = Run(deadline=deadline, sampler=sampler)
        result: dict[str, Any]
        try:
            dsn = configured or (server.dsn if server else "")
            result = asyncio.run(bench(dsn, args, run))
        except DeadlineExceeded as exc:
            result = {"ok": False, "error": f"deadline of {args.deadline_min} min: {exc}"}
        except TimeoutError:
            result = {"ok": False, "error": f"deadline of {args.deadline_min} min reached"}
        finally:
            sampler.stop_event.set()
            thread.join()
            if server is not None:
                server.stop()
    result |= {
        "cpus": os.cpu_count(),
        "args": vars(args),
        "steps": run.steps,
        **sampler.snapshot(),
    }
    print("SCALE-LEDGER " + json.dumps(result, default=str), flush=True)  # paths as text
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    raise SystemExit(main())
