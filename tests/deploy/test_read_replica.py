"""COALITION_REPLICA_URL: read-only endpoints read from a streaming replica (pg_basebackup -R)
while it is within COALITION_REPLICA_LAG_MAX_S, and fall back to the primary past it; the
replica refuses writes; money-deciding calls stay on the primary."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from contracts.partners import PurchaseRequest, RedemptionRequest
from gateway import replica
from gateway.tokens import load_or_create, mint_shopper
from infra import migrations
from infra.settings import Settings
from tests.deploy._cluster import Node, primary_and_replica
from tests.support.partner_network import admin_headers, onboard, signed
from tests.support.server import running_server, server_settings

POLLS_MAX = 200
POLL_PAUSE_S = 0.05
TOKEN_TTL_S = 600
STALE_OK_S = 3600  # a bound the paused replica stays within for the whole test
STALE_NEVER_S = 0  # any lag at all sends reads to the primary


async def _until(check: Callable[[], Awaitable[bool]]) -> None:
    for _ in range(POLLS_MAX):
        if await check():
            return
        await asyncio.sleep(POLL_PAUSE_S)
    raise AssertionError("the condition never held")


async def _caught_up(primary: Node, standby: Node) -> bool:
    p = await asyncpg.connect(primary.dsn)
    r = await asyncpg.connect(standby.dsn)
    try:
        wanted = await p.fetchval(replica.PRIMARY_LSN)
        return bool(await r.fetchval(replica.REPLAYED_LSN) >= wanted)
    finally:
        await p.close()
        await r.close()


async def _fetchval(dsn: str, sql: str) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Node, Node]]:
    # Not under pytest's base temp: pytest keeps that owner-only, and the servers may run as
    # another user (tests/deploy/_cluster.py). Removed when the cluster stops.
    with primary_and_replica(Path(tempfile.mkdtemp(prefix="coalition-replication-"))) as nodes:
        yield nodes


async def test_reads_on_the_replica_writes_refused_there_and_fallback_past_the_lag(
    cluster: tuple[Node, Node], tmp_path: Path
) -> None:
    primary, standby = cluster
    conn = await asyncpg.connect(primary.dsn)
    try:
        await migrations.migrate(conn)
    finally:
        await conn.close()
    key = load_or_create(tmp_path, None)
    me: dict[str, str] = {}

    async def balance_at(http: httpx.AsyncClient) -> int:
        answer = await http.get("/v1/me/balance", headers=me)
        assert answer.status_code == 200, answer.text
        return int(answer.json()["balance"])

    def settings(lag_max_s: int) -> Settings:
        return server_settings(
            primary.dsn, tmp_path, replica_url=standby.dsn, replica_lag_max_s=lag_max_s
        )

    async with (
        running_server(settings(STALE_OK_S)) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as http,
    ):
        partner = await onboard(http, key, "replica-grocer")
        async with partner.client(base_url) as client:
            enrolled = await client.enroll()
            card = enrolled.card_number
            await client.purchase(
                PurchaseRequest(
                    partner_ref="r-1", card_number=card, amount_minor=10_000, currency="EUR"
                )
            )
            token = mint_shopper(
                key,
                shopper_id=enrolled.shopper_id,
                partner_id=partner.partner_id,
                ttl_s=TOKEN_TTL_S,
            )
            me["Authorization"] = f"Bearer {token}"
            await _until(lambda: _caught_up(primary, standby))

            async def balance() -> int:
                return await balance_at(http)

            assert await balance() == 100
            # The read arrived at the replica: its pool's sessions are there, not on the primary.
            on_replica = (
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'coalition-reads'"
            )
            assert await _fetchval(standby.dsn, on_replica) >= 1
            assert await _fetchval(primary.dsn, on_replica) == 0

            # Replay paused: the replica falls behind; within the bound, reads stay there.
            await _fetchval(standby.dsn, "SELECT pg_wal_replay_pause()")
            await client.purchase(
                PurchaseRequest(
                    partner_ref="r-2", card_number=card, amount_minor=10_000, currency="EUR"
                )
            )
            assert await balance() == 100  # the replica's (stale) answer
            # A signed partner read: admitted on the primary (its nonce), read on the replica.
            nonces = "SELECT count(*) FROM signature_nonces"
            before = await _fetchval(primary.dsn, nonces)
            url = f"{base_url}/v1/statements"
            listing = await http.get(url, headers=signed(partner, "GET", url))
            assert listing.status_code == 200, listing.text
            assert await _fetchval(primary.dsn, nonces) == before + 1
            analytics = await http.get(
                "/v1/operator/analytics/liability", headers=admin_headers(key)
            )
            assert analytics.status_code == 200, analytics.text
            history = await http.get("/v1/me/history", headers=me)
            assert history.status_code == 200, history.text
            assert len(history.json()["items"]) == 1  # the replica has not replayed r-2
            for path in ("/v1/insights/segments", "/v1/insights/retention-cohorts"):
                insight = await http.get(path, headers=signed(partner, "GET", base_url + path))
                assert insight.status_code == 200, insight.text
            # Money decisions stay on the primary: a redemption sees the 200 points.
            redeemed = await client.redeem(
                RedemptionRequest(partner_ref="r-3", card_number=card, points=150)
            )
            assert redeemed.balance == 50
            assert await balance() == 100

    # The same paused replica with a bound of 0: the server falls back to the primary.
    async with (
        running_server(settings(STALE_NEVER_S)) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as http,
    ):

        async def lag_measured() -> bool:
            scraped = (await http.get("/metrics")).text
            lag = next(
                float(line.split()[1])
                for line in scraped.splitlines()
                if line.startswith("coalition_read_replica_lag_seconds ")
            )
            return lag > STALE_NEVER_S

        await _until(lag_measured)  # the paused replica is measured behind: past the bound
        assert await balance_at(http) == 50  # the primary's answer
        scraped = (await http.get("/metrics")).text
        assert "coalition_read_replica_in_use 0.0" in scraped

    # The replica refuses a write whatever asks.
    standby_conn = await asyncpg.connect(standby.dsn)
    try:
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await standby_conn.execute("INSERT INTO ops_verify_run (problems) VALUES (0)")
    finally:
        await standby_conn.close()
    await _fetchval(standby.dsn, "SELECT pg_wal_replay_resume()")


async def test_a_server_that_is_not_a_replica_or_is_gone_is_never_read(
    cluster: tuple[Node, Node],
) -> None:
    primary, standby = cluster
    primary_pool = await asyncpg.create_pool(primary.dsn, min_size=1, max_size=2)
    assert primary_pool is not None
    try:
        not_a_replica = replica.ReadReplica(
            await asyncpg.create_pool(primary.dsn, min_size=1, max_size=1), lag_max_s=STALE_OK_S
        )
        await not_a_replica.measure(primary_pool)
        assert (not_a_replica.lag_s, not_a_replica.fresh()) == (None, False)
        await not_a_replica.close()

        real = replica.ReadReplica(
            await asyncpg.create_pool(standby.dsn, min_size=1, max_size=1), lag_max_s=STALE_OK_S
        )
        await real.measure(primary_pool)
        assert real.fresh()
        await real.pool.close()  # the replica's pool is gone: reads go back to the primary
        await real.measure(primary_pool)
        assert (real.lag_s, real.fresh()) == (None, False)
    finally:
        await primary_pool.close()
