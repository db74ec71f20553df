"""Webhook delivery under load: signed purchases at a steady rate, each delivered to a local
receiver by the server's own worker.

    python tests/load/webhook_delivery_bench.py [--rate 200] [--seconds 30]

Starts a throwaway embedded PostgreSQL (deleted afterwards) and `coalition serve` (one app
process, workers on, COALITION_WEBHOOKS_ALLOW_LOOPBACK=1) on 127.0.0.1; onboards a partner
through the operator API, enrolls shoppers through the signed API, registers one endpoint
(written into the schema, as the endpoint API writes it) served by a threaded receiver on
127.0.0.1, then sends `--rate` signed purchases per second for `--seconds`. It reports the
purchases' rate, the delivery throughput (messages delivered per second from the first event to
the last delivery) and the lag from each event's occurred_at to its delivered_at (p50, p95,
p99, max). Not a test: the numbers go in docs/performance.md. Bounded: RATE_MAX, SECONDS_MAX.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from contracts.partners import PurchaseRequest
from gateway.tokens import load_or_create
from infra import embedded
from tests.support.databases import create_database
from tests.support.partner_network import onboard
from tests.support.server import free_port
from tests.webhooks.endpoints import add_endpoint, network_box
from tests.webhooks.receiver import receiving

RATE_MAX = 400
SECONDS_MAX = 120
SHOPPERS = 200
DRAIN_WAIT_S = 120.0


async def ready(url: str) -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        for _ in range(300):
            try:
                if (await http.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("the server did not become ready")


def serve(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def run(rate: int, seconds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="webhook-bench-") as scratch:
        root = Path(scratch)
        pg = embedded.start(root / "pg", cleanup_mode="delete")
        process: subprocess.Popen[bytes] | None = None
        try:
            dsn = await create_database(pg.dsn, template=None)
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("COALITION_")}
            env.update(
                {
                    "DATABASE_URL": dsn,
                    "COALITION_DATA_DIR": str(root / "data"),
                    "COALITION_WEBHOOKS_ALLOW_LOOPBACK": "1",
                }
            )
            process = serve(port, env)
            url = f"http://127.0.0.1:{port}"
            await ready(url)
            await measure(url, dsn, root / "data", rate, seconds)
        finally:
            if process is not None:
                process.terminate()
                process.wait(timeout=60)
            pg.stop()


async def measure(url: str, dsn: str, data_dir: Path, rate: int, seconds: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        # above the default 100/s per key, which would answer 429 and the SDK back off
        shop = await onboard(
            http, load_or_create(data_dir, None), "bench-shop", rate_limit_per_s=1_000
        )
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    assert pool is not None
    with receiving() as receiver:
        async with pool.acquire() as conn:
            endpoint_id, _ = await add_endpoint(
                conn, network_box(data_dir), shop.partner_id, receiver.url
            )
        async with shop.client(url, timeout_s=30) as client:
            cards = [(await client.enroll()).card_number for _ in range(SHOPPERS)]
            print(f"enrolled {SHOPPERS} shoppers", flush=True)
            total = rate * seconds
            failures = 0

            async def buy(n: int) -> None:
                nonlocal failures
                try:
                    await client.purchase(
                        PurchaseRequest(
                            partner_ref=f"wb-{n}",
                            card_number=cards[n % SHOPPERS],
                            amount_minor=100 + n % 5_000,
                            currency="EUR",
                        )
                    )
                except Exception:
                    failures += 1

            started = time.monotonic()
            tasks = []
            for n in range(total):
                due = started + n / rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(buy(n)))
            await asyncio.gather(*tasks)
            sent_s = time.monotonic() - started
            print(f"sent {total} purchases in {sent_s:.1f} s", flush=True)
        deadline = time.monotonic() + DRAIN_WAIT_S
        while time.monotonic() < deadline:
            pending = await pool.fetchval(
                "SELECT count(*) FROM webhooks.message WHERE endpoint_id = $1"
                " AND state <> 'delivered'",
                endpoint_id,
            )
            if pending == 0:
                break
            await asyncio.sleep(0.5)
        rows = await pool.fetch(
            "SELECT extract(epoch FROM m.delivered_at - o.occurred_at)::float8 AS lag_s,"
            " extract(epoch FROM o.occurred_at)::float8 AS at_s,"
            " extract(epoch FROM m.delivered_at)::float8 AS done_s"
            " FROM webhooks.message m JOIN event_outbox o USING (event_id)"
            " WHERE m.endpoint_id = $1 AND m.state = 'delivered'",
            endpoint_id,
        )
    await pool.close()
    lags = [r["lag_s"] for r in rows]
    window_s = max(r["done_s"] for r in rows) - min(r["at_s"] for r in rows)
    print(
        f"purchases: {total - failures} ok, {failures} failed, {(total - failures) / sent_s:.0f}/s"
    )
    print(
        f"delivered: {len(rows)} of {total - failures} in {window_s:.1f} s "
        f"({len(rows) / window_s:.0f}/s); receiver saw {len(receiver.requests)} requests"
    )
    p50, p95, p99 = (percentile(lags, share) for share in (0.5, 0.95, 0.99))
    print(f"lag s: p50 {p50:.3f} p95 {p95:.3f} p99 {p99:.3f} max {max(lags):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=30)
    args = parser.parse_args()
    if not (1 <= args.rate <= RATE_MAX and 1 <= args.seconds <= SECONDS_MAX):
        parser.error(f"--rate 1..{RATE_MAX}, --seconds 1..{SECONDS_MAX}")
    asyncio.run(run(args.rate, args.seconds))


if __name__ == "__main__":
    main()
