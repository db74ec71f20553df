"""Readiness follows the database: 503 while it is down, 200 again once it is back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pgserver
import pytest

from infra import embedded, migrations
from tests.support.databases import create_database, drop_database
from tests.support.server import running_server, server_settings

RECOVERY_TIMEOUT_S = 20.0


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[embedded.EmbeddedPostgres]:
    """A cluster of this module's own, since the test stops it."""
    server = embedded.start(Path(tmp_path_factory.mktemp("own-pg")), cleanup_mode="delete")
    yield server
    server.stop()


def stop(cluster: embedded.EmbeddedPostgres) -> None:
    pgserver.pg_ctl(  # type: ignore[attr-defined]
        ["-w", "-m", "fast", "stop"], pgdata=cluster.pgdata, user=cluster.server.system_user
    )


def start(cluster: embedded.EmbeddedPostgres) -> None:
    cluster.server.ensure_postgres_running()


async def wait_for_status(http: httpx.AsyncClient, status: int) -> httpx.Response:
    async with asyncio.timeout(RECOVERY_TIMEOUT_S):
        while True:
            response = await http.get("/readyz")
            if response.status_code == status:
                return response
            await asyncio.sleep(0.2)


async def test_readiness_fails_when_the_database_is_down_and_recovers(
    own_cluster: embedded.EmbeddedPostgres, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(own_cluster.dsn)
    await migrations.migrate(conn)
    await conn.close()
    async with (
        running_server(server_settings(own_cluster.dsn, tmp_path)) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as http,
    ):
        assert (await http.get("/readyz")).status_code == 200
        await asyncio.to_thread(stop, own_cluster)
        down = await wait_for_status(http, 503)
        assert down.json()["database"].startswith("down")
        assert (await http.get("/healthz")).status_code == 200
        await asyncio.to_thread(start, own_cluster)
        up = await wait_for_status(http, 200)
        assert up.json()["status"] == "ready"


async def test_readiness_reports_pending_migrations(server_dsn: str, tmp_path: Path) -> None:
    dsn = await create_database(server_dsn, template=None)
    try:
        async with (
            running_server(server_settings(dsn, tmp_path)) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as http,
        ):
            response = await http.get("/readyz")
        assert response.status_code == 503
        assert response.json()["status"] == "migrating"
        assert len(response.json()["migrations_pending"]) == len(migrations.discover())
    finally:
        await drop_database(server_dsn, dsn)
