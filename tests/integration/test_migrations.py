"""Migrations apply in order, once, and refuse an edited history."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from infra import migrations


@pytest.fixture
async def conn(empty_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(empty_database_url)
    await reset(connection)
    yield connection
    await connection.close()


async def reset(conn: asyncpg.Connection) -> None:
    """Drop every schema of ours, whatever the migrations created."""
    schemas = await conn.fetch(
        "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
        "AND nspname NOT IN ('information_schema', 'public')"
    )
    for row in schemas:
        await conn.execute(f'DROP SCHEMA "{row["nspname"]}" CASCADE')
    await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")


def write(directory: Path, name: str, sql: str) -> None:
    (directory / name).write_text(sql, encoding="utf-8")


async def test_project_migrations_apply_on_an_empty_database_and_are_idempotent(
    empty_database_url: str,
) -> None:
    conn = await asyncpg.connect(empty_database_url)
    try:
        await reset(conn)
        first = await migrations.migrate(conn)
        second = await migrations.migrate(conn)
        recorded = await conn.fetchval("SELECT count(*) FROM schema_migrations")
    finally:
        await conn.close()
    assert [m.version for m in first] == [m.version for m in migrations.discover()]
    assert second == []
    assert recorded == len(first)


async def test_a_tampered_applied_migration_is_refused(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    write(tmp_path, "0001_widgets.sql", "CREATE TABLE widgets (id int PRIMARY KEY);")
    await migrations.migrate(conn, tmp_path)
    write(tmp_path, "0001_widgets.sql", "CREATE TABLE widgets (id bigint PRIMARY KEY);")
    with pytest.raises(migrations.MigrationError, match=r"0001_widgets\.sql was changed"):
        await migrations.migrate(conn, tmp_path)
    with pytest.raises(migrations.MigrationError):
        await migrations.pending(conn, tmp_path)


async def test_a_failing_migration_rolls_back_and_records_nothing(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    write(tmp_path, "0001_widgets.sql", "CREATE TABLE widgets (id int PRIMARY KEY);")
    write(tmp_path, "0002_broken.sql", "ALTER TABLE widgets ADD COLUMN x int; SELECT 1/0;")
    with pytest.raises(asyncpg.DivisionByZeroError):
        await migrations.migrate(conn, tmp_path)
    columns = await conn.fetchval(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'widgets'"
    )
    versions = await conn.fetch("SELECT version FROM schema_migrations")
    assert columns == 1
    assert [r["version"] for r in versions] == [1]


async def test_an_applied_migration_missing_on_disk_is_an_error(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    write(tmp_path, "0001_widgets.sql", "CREATE TABLE widgets (id int PRIMARY KEY);")
    await migrations.migrate(conn, tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(migrations.MigrationError, match="missing on disk"):
        await migrations.migrate(conn, other)


async def test_badly_named_files_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "1_widgets.sql", "SELECT 1;")
    with pytest.raises(migrations.MigrationError, match=r"NNNN_name\.sql"):
        migrations.discover(tmp_path)


async def test_concurrent_runners_apply_each_migration_once(
    empty_database_url: str, tmp_path: Path
) -> None:
    shutil.copytree(migrations.MIGRATIONS_DIR, tmp_path, dirs_exist_ok=True)
    write(
        tmp_path,
        "0999_counter.sql",
        "CREATE TABLE applied_counter (n int); INSERT INTO applied_counter VALUES (1);",
    )
    conns = [await asyncpg.connect(empty_database_url) for _ in range(4)]
    try:
        await reset(conns[0])
        results = await asyncio.gather(*(migrations.migrate(c, tmp_path) for c in conns))
        rows = await conns[0].fetchval("SELECT count(*) FROM applied_counter")
    finally:
        for c in conns:
            await c.close()
    assert sum(len(r) for r in results) == len(migrations.discover(tmp_path))
    assert rows == 1
