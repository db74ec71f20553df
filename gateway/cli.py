"""The `coalition` command line."""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import socket
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import asyncpg

from contracts.errors import DomainError
from gateway import cli_backup, cli_card, demo, logs, metrics_processes, ops_metrics, slow_clients
from gateway.console import cli_users
from gateway.tokens import TTL_S_MAX, Role, load_or_create, mint_operator
from infra import backup, db, embedded, migrations
from infra import settings as settings_module
from infra.settings import Settings
from ledger import settlement, verify

EXIT_USAGE = 2
EXIT_FAILED = 1
WORKERS_MAX = 32
KEEP_ALIVE_TIMEOUT_S_DEFAULT = 5  # uvicorn's own default, now explicit


class CliError(Exception):
    """Ends the command with one clear line on stderr and a non-zero exit."""


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CliError(
                    f"port {port} on {host} is already in use (set COALITION_PORT or --port)"
                ) from None
            raise CliError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _database(settings: Settings) -> tuple[str, embedded.EmbeddedPostgres | None]:
    """The DSN to use, starting the embedded PostgreSQL when DATABASE_URL is unset."""
    if settings.database_url:
        try:
            asyncio.run(db.check_reachable(settings.database_url))
        except db.DatabaseUnreachable as exc:
            masked = settings_module.mask_dsn(settings.database_url)
            raise CliError(f"DATABASE_URL {masked} is unreachable: {exc}") from None
        return settings.database_url, None
    try:
        server = embedded.start(settings.data_dir)
    except embedded.EmbeddedUnavailable as exc:
        raise CliError(str(exc)) from None
    return server.dsn, server


async def _migrate(dsn: str) -> list[migrations.Migration]:
    conn = await asyncpg.connect(dsn, timeout=db.CONNECT_TIMEOUT_S)
    try:
        return await migrations.migrate(conn)
    except migrations.MigrationError as exc:
        raise CliError(f"migrations refused: {exc}") from None
    finally:
        await conn.close()


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    host = args.host or settings.host
    port = args.port or settings.port
    _check_port_free(host, port)
    dsn, server = _database(settings)
    try:
        # Off behind PgBouncer (transaction mode): the migration lock is a session lock, so
        # migrations run from a job on a direct connection (docs/deploy.md).
        applied = asyncio.run(_migrate(dsn)) if settings.migrate_on_start else []
        if args.demo:
            summary = asyncio.run(demo.seed(dsn, settings.data_dir, settings.master_key))
            print(f"coalition: demo network: {summary}", flush=True)
            console_logins = asyncio.run(cli_users.seed_demo(dsn))
        os.environ["DATABASE_URL"] = dsn  # worker processes read it from the environment
        os.environ[slow_clients.READ_TIMEOUT_ENV] = str(args.request_read_timeout)
        key = load_or_create(settings.data_dir, settings.jwt_private_key_pem)
        token = mint_operator(key, subject="make-run", role=Role.ADMIN, ttl_s=12 * 3600)
        base = f"http://{host}:{port}"
        print(f"coalition: {len(applied)} migration(s) applied; serving on {base}", flush=True)
        print(f"  health   {base}/healthz   ready {base}/readyz   metrics {base}/metrics")
        print(f"  api docs {base}/schema/swagger   OpenAPI {base}/schema")
        print(f"  console  {base}/console")
        if args.demo:
            print(f"  console sign-in: {console_logins}")
        if not settings.smtp_url:
            print(
                f"  email    COALITION_SMTP_URL unset: .eml files in {settings.data_dir / 'mail'}"
            )
        print(f"  operator token (admin, 12 h):\n    {token}")
        print(f"  try: curl -H 'Authorization: Bearer <token>' {base}/v1/operator/me", flush=True)
        with metrics_processes.shared_directory(args.workers) as metrics_dir:
            if metrics_dir is not None:
                print(f"  metrics  {args.workers} workers, merged from {metrics_dir}", flush=True)
            uvicorn.run(
                "gateway.app:create_app",
                factory=True,
                host=host,
                port=port,
                workers=args.workers,
                loop="uvloop",
                http=slow_clients.PROTOCOL,
                timeout_keep_alive=args.keep_alive_timeout,
                log_config=None,
                access_log=False,
            )
    finally:
        if server is not None:
            server.stop()
    return 0


def cmd_migrate(_: argparse.Namespace, settings: Settings) -> int:
    dsn, server = _database(settings)
    try:
        applied = asyncio.run(_migrate(dsn))
    finally:
        if server is not None:
            server.stop()
    for migration in applied:
        print(f"applied {migration.version:04d}_{migration.name}")
    print(f"{len(applied)} migration(s) applied; the database is current")
    return 0


def cmd_config(_: argparse.Namespace, settings: Settings) -> int:
    print(json.dumps(settings.masked(), indent=2, sort_keys=True))
    return 0


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    if not 0 < args.ttl <= TTL_S_MAX:
        raise CliError(f"--ttl must be within 1..{TTL_S_MAX} seconds")
    key = load_or_create(settings.data_dir, settings.jwt_private_key_pem)
    print(mint_operator(key, subject=args.subject, role=Role(args.role), ttl_s=args.ttl))
    return 0


async def _verify(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn, timeout=db.CONNECT_TIMEOUT_S)
    try:
        found = await verify.verify(conn)
        settlement_problems = await settlement.verify_settlements(conn)
        lines = [f"invariant {p.invariant} ({p.check}): {p.detail}" for p in found]
        lines += [f"settlement: {problem}" for problem in settlement_problems]
        await ops_metrics.record_verify(conn, lines)  # exported by the service (alerts)
    finally:
        await conn.close()
    return lines


def cmd_verify(_: argparse.Namespace, settings: Settings) -> int:
    dsn, server = _database(settings)
    try:
        problems = asyncio.run(_verify(dsn))
    finally:
        if server is not None:
            server.stop()
    for problem in problems:
        print(problem)
    if problems:
        print(f"coalition verify: {len(problems)} problem(s) found", file=sys.stderr)
        return EXIT_FAILED
    print("coalition verify: every invariant holds and the hash chain is intact")
    return 0


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"--until {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise CliError(f"--until {text!r} needs a UTC offset, e.g. 2026-11-24T00:00:00+00:00")
    return moment


async def _settle(dsn: str, until: datetime | None) -> settlement.SettleSummary:
    pool = await db.create_pool(dsn, size_min=1, size_max=2, reset_session=True)
    try:
        return await settlement.settle_until(pool, until, now=datetime.now(UTC))
    finally:
        await pool.close()


def cmd_settle(args: argparse.Namespace, settings: Settings) -> int:
    until = _parse_time(args.until) if args.until else None
    dsn, server = _database(settings)
    try:
        summary = asyncio.run(_settle(dsn, until))
    finally:
        if server is not None:
            server.stop()
    closed = ", ".join(str(p) for p in summary.closed_period_ids) or "none"
    print(f"closed periods: {closed}; settled up to {summary.last_period_end}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="coalition", description="Coalition loyalty network")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service and background workers")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--demo", action="store_true", help="seed a small demo network first")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        choices=range(1, WORKERS_MAX + 1),
        metavar=f"1..{WORKERS_MAX}",
    )
    serve.add_argument(
        "--request-read-timeout",
        type=float,
        default=slow_clients.READ_TIMEOUT_S_DEFAULT,
        metavar="S",
        help="close a connection whose request (headers and body) takes longer than S seconds "
        "to arrive (slow clients, slowloris)",
    )
    serve.add_argument(
        "--keep-alive-timeout",
        type=int,
        default=KEEP_ALIVE_TIMEOUT_S_DEFAULT,
        metavar="S",
        help="close an idle keep-alive connection after S seconds",
    )
    serve.set_defaults(handler=cmd_serve)
    sub.add_parser("migrate", help="apply pending migrations").set_defaults(handler=cmd_migrate)
    sub.add_parser("config", help="print effective settings, secrets masked").set_defaults(
        handler=cmd_config
    )
    token = sub.add_parser("token", help="mint tokens")
    token_sub = token.add_subparsers(dest="kind", required=True)
    operator = token_sub.add_parser("operator", help="an operator JWT")
    operator.add_argument("--role", required=True, choices=[r.value for r in Role])
    operator.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    operator.add_argument("--subject", default="cli")
    operator.set_defaults(handler=cmd_token)
    sub.add_parser("verify", help="check every ledger invariant and the hash chain").set_defaults(
        handler=cmd_verify
    )
    settle = sub.add_parser("settle", help="close settlement periods (due ones, or up to --until)")
    settle.add_argument("--until", default=None, help="ISO 8601 time with offset")
    settle.set_defaults(handler=cmd_settle)
    cli_backup.register(sub, _database)
    cli_card.register(sub, _database)
    # `bench` has its own parser (gateway.bench); main() hands it the rest of the line.
    sub.add_parser("bench", help="benchmarks next to pgbench (coalition bench --help)")
    cli_users.add_parser(sub)
    return parser


Handler = Callable[[argparse.Namespace, Settings], int]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        # The bench starts its own throwaway database and server: no settings, no _database().
        from gateway.bench import main as bench_main

        return bench_main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        settings = settings_module.load()
        logs.configure(settings.log_level)
        handler: Handler = args.handler
        return handler(args, settings)
    except DomainError as exc:
        print(f"coalition: {exc} ({exc.code})", file=sys.stderr)
        return EXIT_FAILED
    except (
        CliError,
        settings_module.ConfigError,
        backup.BackupFailed,
        cli_backup.RestoreRefused,
    ) as exc:
        print(f"coalition: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, settings_module.ConfigError) else EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
