"""Fixtures of the drills: a PostgreSQL cluster of their own (some drills stop it abruptly),
with a migrated template, and a fresh database from it per drill."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from infra import migrations
from tests.faults.harness import Cluster
from tests.support.databases import create_database, drop_database, dsn_for

TEMPLATE = "coalition_drills_template"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    own = Cluster.create(Path(tmp_path_factory.mktemp("drills-pg")))
    yield own
    own.close()


@pytest.fixture(scope="session")
async def drills_template(cluster: Cluster) -> str:
    admin = await asyncpg.connect(cluster.dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{TEMPLATE}"')
    finally:
        await admin.close()
    conn = await asyncpg.connect(dsn_for(cluster.dsn, TEMPLATE))
    try:
        await migrations.migrate(conn)
    finally:
        await conn.close()
    return TEMPLATE


@pytest.fixture
async def drill_database(cluster: Cluster, drills_template: str) -> AsyncIterator[str]:
    """A fresh, migrated database on the drills' own cluster."""
    dsn = await create_database(cluster.dsn, template=drills_template)
    yield dsn
    await drop_database(cluster.dsn, dsn)
