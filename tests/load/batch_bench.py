"""Batch ingest throughput: POST /v1/purchases/batch with 1,000 purchases per call.

    python tests/load/batch_bench.py [--batches 20] [--concurrency 2] [--shoppers 10000]

Starts a throwaway embedded PostgreSQL (deleted afterwards) unless DATABASE_URL is set, then a
scratch database with the migrations and `coalition serve` on 127.0.0.1 (gateway.bench's own
server process, one app process, workers on). Provisions partners and keys through the
operator API and enrolls the shoppers through the signed POST /v1/shoppers, spread over the
partners (gateway.bench's provisioning, as partners enroll theirs), pre-builds and signs every
batch (unique partner_refs, random shoppers and amounts), then posts them with
`--concurrency` calls in flight and reports purchases/s over the wall time from the first
call to the last answer, with the CPU spent over that window by the server's process and by
its pool's PostgreSQL backends (the batches' and the background jobs'), per purchase.
Afterwards it checks that every item was created, that the database holds exactly that many
purchases, and that `ledger.verify` is clean; it fails loudly otherwise.

Loopback only and bounded: at most BATCHES_MAX calls, RUN_TIMEOUT_S for the whole run. Not a
test: it prints numbers for docs/performance.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from contracts.partners import MAX_BATCH_ITEMS
from contracts.signing import sign_request
from gateway.bench import _provision, _server
from gateway.bench._requests import PartnerKey, card_number
from gateway.tokens import load_or_create
from infra import embedded, migrations
from ledger import verify
from tests.load.earn_cpu import backend_cpu_s

BENCH_DATABASE = "coalition_batch_bench"
BATCHES_MAX = 200
CONCURRENCY_MAX = 8
SHOPPERS_MAX = 100_000
PARTNERS = 2
RUN_TIMEOUT_S = 600.0
CALL_TIMEOUT_S = 120.0
AMOUNT_MINOR_MIN = 100
AMOUNT_MINOR_MAX = 20_000
BATCH_PATH = "/v1/purchases/batch"


@dataclass(frozen=True)
class Batch:
    partner: PartnerKey
    idempotency_key: str
    body: bytes

    def headers(self, base_url: str) -> dict[str, str]:
        """Signed when sent (a signature's `created` is only good for 300 s)."""
        headers = {"Content-Type": "application/json", "Idempotency-Key": self.idempotency_key}
        sign_request(
            "POST",
            f"{base_url}{BATCH_PATH}",
            headers,
            self.body,
            key_id=self.partner.key_id,
            secret=self.partner.secret,
        )
        return headers


WARM_UP_BATCHES = 2


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=20, help=f"calls, 1..{BATCHES_MAX}")
    parser.add_argument(
        "--concurrency", type=int, default=2, help=f"calls in flight, 1..{CONCURRENCY_MAX}"
    )
    parser.add_argument("--shoppers", type=int, default=10_000, help=f"1..{SHOPPERS_MAX}")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# The server's pool's backends: every client backend of the bench database but the bench's own.
APP_BACKENDS = """
SELECT pid FROM pg_stat_activity
WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
"""


async def backends_cpu_s(conn: asyncpg.Connection) -> dict[int, float]:
    """CPU seconds of each of the server's backends (an empty dict when PostgreSQL runs where
    this process cannot read its /proc, e.g. another host)."""
    cpu_s: dict[int, float] = {}
    for row in await conn.fetch(APP_BACKENDS):
        try:
            cpu_s[row["pid"]] = backend_cpu_s(row["pid"])
        except OSError:
            return {}
    return cpu_s


def build_batches(
    partners: list[PartnerKey], *, batches: int, shoppers: int, run: str
) -> list[Batch]:
    """Every body built before the clock starts: the client measures the server."""
    rng = random.Random(run)
    built: list[Batch] = []
    for number in range(batches):
        partner = partners[number % len(partners)]
        items = [
            {
                "partner_ref": f"bb-{run}-{number}-{index}",
                "card_number": card_number(rng.randrange(shoppers)),
                "amount_minor": rng.randrange(AMOUNT_MINOR_MIN, AMOUNT_MINOR_MAX),
                "currency": "EUR",
            }
            for index in range(MAX_BATCH_ITEMS)
        ]
        built.append(Batch(partner, f"bb-{run}-{number}", msgspec.json.encode({"items": items})))
    return built


async def post_all(
    http: httpx.AsyncClient, base_url: str, batches: list[Batch], concurrency: int
) -> tuple[float, list[float]]:
    gate = asyncio.Semaphore(concurrency)
    latencies_s: list[float] = []

    async def one(batch: Batch) -> None:
        async with gate:
            started = time.perf_counter()
            headers = batch.headers(base_url)
            response = await http.post(BATCH_PATH, content=batch.body, headers=headers)
            latencies_s.append(time.perf_counter() - started)
            if response.status_code != 201:
                raise RuntimeError(f"a batch answered {response.status_code}: {response.text}")
            answer = response.json()
            if answer["created"] != MAX_BATCH_ITEMS:
                raise RuntimeError(f"a batch created {answer['created']}: {answer['results'][:3]}")

    started = time.perf_counter()
    await asyncio.gather(*(one(batch) for batch in batches))
    return time.perf_counter() - started, latencies_s


async def run(args: argparse.Namespace, server_dsn: str, scratch: Path) -> dict[str, object]:
    app_dsn = await _server.recreate_database(server_dsn, BENCH_DATABASE)
    try:
        conn = await asyncpg.connect(app_dsn)
        try:
            await migrations.migrate(conn)
        finally:
            await conn.close()
        data_dir = scratch / "server"
        data_dir.mkdir()
        server = _server.start_server(app_dsn, data_dir, scratch / "server.log")
        try:
            await _server.wait_ready(server.base_url, server)
            try:
                figures = await measure(
                    args, app_dsn, server.base_url, data_dir, server.process.pid
                )
            except RuntimeError as exc:
                log = server.log_path.read_text(errors="replace")
                errors = [line for line in log.splitlines() if "Error" in line][-3:]
                raise RuntimeError(f"{exc}\nserver errors:\n" + "\n".join(errors)) from exc
            if server.process.poll() is not None:
                raise RuntimeError(f"the server died during the run:\n{server.log_tail()}")
            return figures
        finally:
            server.stop()
    finally:
        await _server.drop_database(server_dsn, BENCH_DATABASE)


async def measure(
    args: argparse.Namespace, app_dsn: str, base_url: str, data_dir: Path, server_pid: int
) -> dict[str, object]:
    key = load_or_create(data_dir, None)
    run_id = str(time.time_ns())[-9:]
    conn = await asyncpg.connect(app_dsn)
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=CALL_TIMEOUT_S) as http:
            partners = await _provision.create_partners(http, key, count=PARTNERS, run=run_id)
            enrolment = await _provision.provision_shoppers(
                base_url, conn, partners, count=args.shoppers
            )

            batches = build_batches(
                partners, batches=args.batches + WARM_UP_BATCHES, shoppers=args.shoppers, run=run_id
            )
            # Unmeasured batches, then ANALYZE: plans cached on empty tables read whole tables
            # (see gateway.bench.warm_up); a production database has statistics.
            await post_all(http, base_url, batches[:WARM_UP_BATCHES], 1)
            await conn.execute("ANALYZE")
            batches = batches[WARM_UP_BATCHES:]
            before = await conn.fetchval("SELECT count(*) FROM partner_transactions")
            server_cpu_s_before = process_cpu_s(server_pid)
            backends_before = await backends_cpu_s(conn)
            elapsed_s, latencies_s = await post_all(http, base_url, batches, args.concurrency)
            server_cpu_s = process_cpu_s(server_pid) - server_cpu_s_before
            backends_after = await backends_cpu_s(conn)
        purchases = args.batches * MAX_BATCH_ITEMS
        recorded = await conn.fetchval("SELECT count(*) FROM partner_transactions") - before
        if recorded != purchases:
            raise RuntimeError(f"{purchases} purchases acknowledged, {recorded} recorded")
        problems = await verify.verify(conn)
        if problems:
            raise RuntimeError(f"ledger.verify: {problems}")
    finally:
        await conn.close()
    return {
        "batches": args.batches,
        "items_per_batch": MAX_BATCH_ITEMS,
        "concurrency": args.concurrency,
        "shoppers": args.shoppers,
        "enrolment_s": round(enrolment.elapsed_s, 1),  # POST /v1/shoppers, before the clock
        "enrolled_per_s": round(enrolment.shoppers_per_s),
        "purchases": purchases,
        "elapsed_s": round(elapsed_s, 2),
        "purchases_per_s": round(purchases / elapsed_s),
        "batch_latency_s_p50": round(statistics.median(latencies_s), 2),
        "batch_latency_s_max": round(max(latencies_s), 2),
        # Over the measured window only. A server CPU near elapsed_s: its one Python process
        # is the bottleneck. PostgreSQL's: the pool's backends, the batches' and the background
        # jobs' (aggregates, sealing: they share the cores); no WAL writer, no autovacuum.
        "server_cpu_s": round(server_cpu_s, 2),
        "server_cpu_us_per_purchase": round(server_cpu_s / purchases * 1e6),
        **postgres_cpu(backends_before, backends_after, purchases),
        "verify": "clean",
        "cpus": os.cpu_count(),
    }


def postgres_cpu(
    before: dict[int, float], after: dict[int, float], purchases: int
) -> dict[str, object]:
    """The backends' CPU over the window (a backend opened during it counts from zero; one
    closed during it is missing, and said so)."""
    if not after:
        return {"postgres_cpu_s": "unreadable"}
    cpu_s = sum(spent - before.get(pid, 0.0) for pid, spent in after.items())
    figures: dict[str, object] = {
        "postgres_cpu_s": round(cpu_s, 2),
        "postgres_cpu_us_per_purchase": round(cpu_s / purchases * 1e6),
    }
    if set(before) - set(after):
        figures["postgres_backends_closed"] = len(set(before) - set(after))
    return figures


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if not 1 <= args.batches <= BATCHES_MAX:
        parser().error(f"--batches must be 1..{BATCHES_MAX}")
    if not 1 <= args.concurrency <= CONCURRENCY_MAX:
        parser().error(f"--concurrency must be 1..{CONCURRENCY_MAX}")
    if not 1 <= args.shoppers <= SHOPPERS_MAX:
        parser().error(f"--shoppers must be 1..{SHOPPERS_MAX}")
    database_url = os.environ.get("DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="coalition-batch-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        cluster = None if database_url else embedded.start(scratch / "pg", cleanup_mode="delete")
        try:
            dsn = database_url or cluster.dsn  # type: ignore[union-attr]
            figures = asyncio.run(asyncio.wait_for(run(args, dsn, scratch), RUN_TIMEOUT_S))
        finally:
            if cluster is not None:
                cluster.stop()
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for name, value in figures.items():
            print(f"{name:>22}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
