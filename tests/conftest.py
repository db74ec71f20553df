"""Test harness: one throwaway PostgreSQL per session, a fresh database per test module.

With DATABASE_URL set, its server is used instead (the role must be allowed CREATE DATABASE).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from infra import embedded, migrations
from tests.support.databases import create_database, drop_database, dsn_for

TEMPLATE_DB = "coalition_test_template"


@pytest.fixture(scope="session")
def server_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A DSN on the maintenance database of the session's PostgreSQL server."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    data_dir = Path(tmp_path_factory.mktemp("pg"))
    server = embedded.start(data_dir, cleanup_mode="delete")
    try:
        yield server.dsn
    finally:
        server.stop()


@pytest.fixture(scope="session")
async def template_dsn(server_dsn: str) -> str:
    """A database with every migration applied, cloned for each test module."""
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
    finally:
        await admin.close()
    dsn = dsn_for(server_dsn, TEMPLATE_DB)
    conn = await asyncpg.connect(dsn)
    try:
        await migrations.migrate(conn)
    finally:
        await conn.close()
    return dsn


@pytest.fixture(scope="module")
async def database_url(server_dsn: str, template_dsn: str) -> AsyncIterator[str]:
    """A fresh, fully migrated database for this test module."""
    dsn = await create_database(server_dsn, template=TEMPLATE_DB)
    yield dsn
    await drop_database(server_dsn, dsn)


@pytest.fixture(scope="module")
async def empty_database_url(server_dsn: str) -> AsyncIterator[str]:
    """A fresh database with no migrations applied."""
    dsn = await create_database(server_dsn, template=None)
    yield dsn
    await drop_database(server_dsn, dsn)


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(database_url, min_size=1, max_size=20)
    assert created is not None
    yield created
    await asyncio.wait_for(created.close(), timeout=10)
