"""The peer, side by side (issue 7): django-hordak transfers/s next to pgbench TPC-B and
`ledger.service.earn` ops/s, on the same PostgreSQL in the same invocation, without HTTP.

    nice -n 19 .venv/bin/python -m tests.load.hordak_peer [--duration-s 10] [--clients 8]
        [--hordak-python /tmp/hordak-venv/bin/python]

django-hordak is NOT a dependency of this project. Install it into a separate venv first:

    python3 -m venv /tmp/hordak-venv
    /tmp/hordak-venv/bin/pip install django-hordak psycopg2-binary

One run: starts a throwaway embedded PostgreSQL (deleted afterwards) unless DATABASE_URL is
set; creates three scratch databases on it; runs `pgbench -i -s 10` then `pgbench -M prepared`
TPC-B; then `ledger.service.earn` from `--clients` asyncpg connections (as
tests/load/ledger_bench.py does); then starts this same file under the hordak venv's Python
(`--worker`), which writes a minimal Django settings module into a temporary directory
(INSTALLED_APPS: contenttypes, auth, mptt, hordak; the PostgreSQL backend on the same server),
runs `migrate`, creates two asset accounts and calls `Account.transfer_to(other, Money(1, EUR))`
from `--clients` threads (one Django connection each) for `--duration-s`, and prints
transfers/s as JSON. Each figure runs for the same duration with the same client count;
nothing else in this project imports Django. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DURATION_S_MAX = 60
CLIENTS_MAX = 32
SHOPPERS = 20_000
HORDAK_PYTHON = "/tmp/hordak-venv/bin/python"
WORKER_TIMEOUT_S = 300

SETTINGS = """
SECRET_KEY = "hordak-peer-bench-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "mptt",
    "hordak",
]
DATABASES = {{"default": {database!r}}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
HORDAK_INTERNAL_CURRENCY = "EUR"
CURRENCIES = ["EUR"]
"""


def django_database(dsn: str) -> dict[str, Any]:
    """Django's DATABASES entry for a libpq URL (host may be a unix socket directory)."""
    parts = urlsplit(dsn)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    host = query.get("host") or parts.hostname or "127.0.0.1"
    if not host.startswith("/") and host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing a non-loopback database host: {host}")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": unquote(parts.username or "postgres"),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": host,
        "PORT": str(parts.port or query.get("port") or 5432),
        "CONN_MAX_AGE": None,
    }


def worker(dsn: str, *, clients: int, duration_s: int) -> dict[str, Any]:
    """Runs under the hordak venv: migrate, two accounts, transfers from `clients` threads."""
    with tempfile.TemporaryDirectory(prefix="hordak-peer-settings-") as scratch:
        Path(scratch, "hordak_peer_settings.py").write_text(
            SETTINGS.format(database=django_database(dsn)), encoding="utf-8"
        )
        sys.path.insert(0, scratch)
        os.environ["DJANGO_SETTINGS_MODULE"] = "hordak_peer_settings"
        return _transfers(clients=clients, duration_s=duration_s)


def _transfers(*, clients: int, duration_s: int) -> dict[str, Any]:
    django = importlib.import_module("django")
    django.setup()
    management = importlib.import_module("django.core.management")
    started = time.monotonic()
    management.call_command("migrate", verbosity=0)
    migrate_s = time.monotonic() - started
    models = importlib.import_module("hordak.models")
    money = importlib.import_module("djmoney.money")
    db = importlib.import_module("django.db")
    account = models.Account
    source = account.objects.create(name="Source", type="AS", currencies=["EUR"])
    target = account.objects.create(name="Target", type="AS", currencies=["EUR"])
    counts = [0] * clients
    errors: list[str] = []
    deadline = time.monotonic() + duration_s

    def client(index: int) -> None:
        try:
            mine_from = account.objects.get(pk=source.pk)
            mine_to = account.objects.get(pk=target.pk)
            one = money.Money(1, "EUR")
            while time.monotonic() < deadline:
                mine_from.transfer_to(mine_to, one)
                counts[index] += 1
        except Exception as exc:  # reported, not hidden
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            db.connections.close_all()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    begun = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - begun
    legs = models.Leg.objects.count()
    balance = str(account.objects.get(pk=target.pk).get_balance())
    return {
        "hordak_version": importlib.import_module("importlib.metadata").version("django-hordak"),
        "django_version": django.get_version(),
        "migrate_s": round(migrate_s, 2),
        "transfers": sum(counts),
        "transfers_per_s": round(sum(counts) / elapsed, 1),
        "legs": legs,
        "target_balance": balance,
        "errors": errors[:5],
    }


async def earn_rate(dsn: str, *, clients: int, duration_s: int) -> float:
    import asyncpg

    from infra import migrations
    from infra.db import Conn
    from ledger import service as ledger
    from tests.load.ledger_bench import measure

    setup = await asyncpg.connect(dsn)
    try:
        await migrations.migrate(setup)
    finally:
        await setup.close()
    pool = await asyncpg.create_pool(dsn, min_size=clients, max_size=clients)
    assert pool is not None
    expires_at = datetime.now(UTC) + timedelta(days=365)
    run_id = time.time_ns()

    async def earn(conn: Conn, client: int, n: int) -> object:
        return await ledger.earn(
            conn,
            idempotency_key=f"peer:{run_id}:{client}:{n}",
            shopper_id=1 + (n * clients + client) % SHOPPERS,
            partner_id=1,
            points=100,
            issue_price_micros=5_000,
            expires_at=expires_at,
        )

    try:
        return await measure(pool, clients=clients, duration_s=duration_s, operation=earn)
    finally:
        await pool.close()


async def create_databases(server_dsn: str) -> tuple[str, str, str]:
    from tests.load.ledger_bench import recreate

    return (
        await recreate(server_dsn, "peer_pgbench"),
        await recreate(server_dsn, "peer_coalition"),
        await recreate(server_dsn, "peer_hordak"),
    )


def compare(server_dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    from tests.load.ledger_bench import pgbench

    pgbench_dsn, ledger_dsn, hordak_dsn = asyncio.run(create_databases(server_dsn))
    tpcb = pgbench(pgbench_dsn, clients=args.clients, duration_s=args.duration_s)
    earns = asyncio.run(earn_rate(ledger_dsn, clients=args.clients, duration_s=args.duration_s))
    result: dict[str, Any] = {
        "clients": args.clients,
        "duration_s": args.duration_s,
        "cpus": os.cpu_count(),
        "pgbench_tpcb_tps": round(tpcb, 1),
        "coalition_earn_per_s": round(earns, 1),
        "coalition_earn_x_pgbench": round(earns / tpcb, 3),
    }
    if not Path(args.hordak_python).exists():
        result["hordak_error"] = f"{args.hordak_python} not found: install the venv (see doc)"
        return result
    run = subprocess.run(
        [
            args.hordak_python,
            str(Path(__file__).resolve()),
            "--worker",
            "--dsn",
            hordak_dsn,
            "--clients",
            str(args.clients),
            "--duration-s",
            str(args.duration_s),
        ],
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT_S,
    )
    lines = [line for line in run.stdout.splitlines() if line.startswith("HORDAK ")]
    if run.returncode != 0 or not lines:
        result["hordak_error"] = (run.stderr or run.stdout)[-2000:]
        return result
    peer = json.loads(lines[-1].removeprefix("HORDAK "))
    result["hordak"] = peer
    rate = float(peer["transfers_per_s"])
    result["hordak_transfers_per_s"] = rate
    result["hordak_x_pgbench"] = round(rate / tpcb, 3)
    result["coalition_earn_x_hordak"] = round(earns / rate, 2) if rate else None
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=int, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--hordak-python", default=HORDAK_PYTHON)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dsn", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 1 <= args.duration_s <= DURATION_S_MAX or not 1 <= args.clients <= CLIENTS_MAX:
        parser.error(f"--duration-s 1..{DURATION_S_MAX}, --clients 1..{CLIENTS_MAX}")
    if args.worker:
        out = worker(args.dsn, clients=args.clients, duration_s=args.duration_s)
        print("HORDAK " + json.dumps(out), flush=True)
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from infra import embedded

    configured = os.environ.get("DATABASE_URL")
    if configured:
        result = compare(configured, args)
    else:
        with tempfile.TemporaryDirectory(prefix="hordak-peer-") as scratch:
            server = embedded.start(Path(scratch), cleanup_mode="delete")
            try:
                result = compare(server.dsn, args)
            finally:
                server.stop()
    print(f"{args.clients} clients, {args.duration_s} s each, {os.cpu_count()} CPUs")
    print(f"{'workload':<40}{'ops/s':>10}{'x TPC-B':>10}")
    print(f"{'pgbench TPC-B (-M prepared)':<40}{result['pgbench_tpcb_tps']:>10.0f}{1.0:>10.2f}")
    print(
        f"{'coalition ledger.service.earn':<40}{result['coalition_earn_per_s']:>10.0f}"
        f"{result['coalition_earn_x_pgbench']:>10.2f}"
    )
    if "hordak_transfers_per_s" in result:
        print(
            f"{'django-hordak Account.transfer_to':<40}{result['hordak_transfers_per_s']:>10.0f}"
            f"{result['hordak_x_pgbench']:>10.2f}"
        )
    else:
        print(f"django-hordak: {result.get('hordak_error')}")
    print("HORDAK-PEER " + json.dumps(result), flush=True)
    return 0 if "hordak_transfers_per_s" in result else 1


if __name__ == "__main__":
    raise SystemExit(main())
