"""Fixtures of the drills: a PostgreSQL cluster of their own (some drills stop it abruptly),
with a migrated template, and a fresh database from it per drill."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from infra import migrations
from tests.faults.harness import Cluster
from tests.support.databases import create_database, drop_database, dsn_for

TEMPLATE = "coalition_drills_template"


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    # Not under pytest's temporary root: every pytest run on the machine sets that back to
    # mode 0700, and the cluster's own user (pgserver's, when run as root) must traverse
    # the path again at each restart the drills cause.
    directory = Path(tempfile.mkdtemp(prefix="coalition-drills-"))
    directory.chmod(0o755)
    own = Cluster.create(directory)
    try:
        yield own
    finally:
        own.close()
        shutil.rmtree(directory, ignore_errors=True)


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
