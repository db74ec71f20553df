"""`coalition backup FILE` and `coalition restore FILE`: a logical snapshot of the network's
database and its restore into an empty one (infra/backup.py; docs/backup.md)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg

from infra import backup, db, embedded
from infra.settings import Settings

DatabaseFn = Callable[[Settings], tuple[str, embedded.EmbeddedPostgres | None]]


class RestoreRefused(Exception):
    """The target database is not empty: a restore never merges into a live network."""


def register(sub: Any, database: DatabaseFn) -> None:
    made = sub.add_parser("backup", help="write a consistent snapshot of the database to FILE")
    made.add_argument("file", type=Path)
    made.set_defaults(handler=lambda args, settings: _backup(args, settings, database))
    back = sub.add_parser("restore", help="restore a snapshot into an empty database")
    back.add_argument("file", type=Path)
    back.set_defaults(handler=lambda args, settings: _restore(args, settings, database))


def _backup(args: argparse.Namespace, settings: Settings, database: DatabaseFn) -> int:
    dsn, server = database(settings)
    try:
        size_bytes = backup.dump(dsn, args.file)
    finally:
        if server is not None:
            server.stop()
    print(f"backup written to {args.file} ({size_bytes} bytes)")
    print(f"keep the key files of {settings.data_dir} (master-key, jwt-signing-key.pem) apart")
    return 0


def _restore(args: argparse.Namespace, settings: Settings, database: DatabaseFn) -> int:
    dsn, server = database(settings)
    try:
        asyncio.run(_require_empty(dsn))
        backup.restore(args.file, dsn)
    finally:
        if server is not None:
            server.stop()
    print(f"restored {args.file}; run `coalition verify` next")
    return 0


async def _require_empty(dsn: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=db.CONNECT_TIMEOUT_S)
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog',"
            " 'information_schema')"
        )
    finally:
        await conn.close()
    if tables:
        raise RestoreRefused(
            f"the target database has {tables} table(s): restore needs an empty one"
        )
