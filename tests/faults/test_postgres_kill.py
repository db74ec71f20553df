"""Drill: PostgreSQL stopped abruptly (`pg_ctl stop -m immediate`: every backend quits at once,
crash recovery on the next start) under load, OUTAGES times, on the drills' own cluster.

While it is gone the running server answers 503 problem+json with `Retry-After` on every kind
of route (partner, operator, shopper), never 500; /readyz says so; the log has one line when an
outage begins and one when it ends, no traceback; the server recovers by itself. After each
outage the same exactly-once checks as the server kill drill, and `coalition verify` is green.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import httpx

from contracts.errors import PROBLEM_MEDIA_TYPE
from gateway.tokens import load_or_create, mint_shopper
from tests.faults import network
from tests.faults.harness import Cluster, Server, verify
from tests.faults.load import Load, audit
from tests.support.partner_network import admin_headers

OUTAGES = 3
LOAD_WORKERS = 8
OPS_MAX = 6_000
SHOPPERS = 12
DOWN_S = 1.5  # load keeps running against the server while the database is gone
WAIT_TIMEOUT_S = 60.0
OUTAGE_CODES = {"database_unavailable", "database_busy", "service_unavailable"}


async def wait_for_readyz(http: httpx.AsyncClient, status: int) -> httpx.Response:
    async with asyncio.timeout(WAIT_TIMEOUT_S):
        while True:
            response = await http.get("/readyz")
            if response.status_code == status:
                return response
            await asyncio.sleep(0.1)


def assert_outage_answer(response: httpx.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    assert response.json()["code"] == "database_unavailable", response.text
    assert int(response.headers["retry-after"]) >= 1


async def every_kind_of_route(
    http: httpx.AsyncClient, load: Load, headers: dict[str, dict[str, str]]
) -> list[httpx.Response]:
    """A partner read, an operator read and a shopper read, while the database is gone."""
    card = load.cards[0].number
    return [
        await load.caller.call("GET", f"/v1/shoppers/{card}"),
        await http.get("/v1/operator/points-lifetime", headers=headers["operator"]),
        await http.get("/v1/me", headers=headers["shopper"]),
    ]


def outage_lines(lines: list[dict[str, Any]]) -> tuple[int, int, list[dict[str, Any]]]:
    down = sum(1 for line in lines if line["msg"].startswith("database unreachable"))
    up = sum(1 for line in lines if line["msg"] == "database reachable again")
    traced = [line for line in lines if "exc" in line or line["msg"] == "unhandled error"]
    return down, up, traced


async def test_postgres_stopped_abruptly_answers_503_and_recovers_without_restart(
    cluster: Cluster, drill_database: str, tmp_path: Path
) -> None:
    server = Server(drill_database, tmp_path, tmp_path / "server.log")
    await server.start()
    net = await network.build(server.url, tmp_path, slug="kill-postgres", shoppers=SHOPPERS)
    key = load_or_create(tmp_path, None)
    shopper = mint_shopper(
        key, shopper_id=net.cards[0].shopper_id, partner_id=net.partner.partner_id, ttl_s=600
    )
    headers = {
        "operator": admin_headers(key),
        "shopper": {"Authorization": f"Bearer {shopper}"},
    }
    load = Load(net.caller(server.url), net.cards, seed=7)
    rng = random.Random(7)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            for outage in range(1, OUTAGES + 1):
                stop = asyncio.Event()
                running = asyncio.create_task(load.run(stop, workers=LOAD_WORKERS, ops_max=OPS_MAX))
                await asyncio.sleep(rng.uniform(0.5, 1.5))
                await asyncio.to_thread(cluster.stop_immediately)
                down = await wait_for_readyz(http, 503)
                assert down.json()["database"].startswith("down"), down.text
                for answer in await every_kind_of_route(http, load, headers):
                    assert_outage_answer(answer)
                await asyncio.sleep(DOWN_S)
                await asyncio.to_thread(cluster.start_again)
                await wait_for_readyz(http, 200)  # the same server process, never restarted
                stop.set()
                await running
                await load.settle()
                found = await audit(drill_database, net.partner.partner_id, load)
                assert found.clean, (outage, found)
                checked = verify(drill_database, tmp_path)
                assert checked.returncode == 0, (outage, checked.stdout, checked.stderr)
    finally:
        await asyncio.to_thread(cluster.ensure_running)  # for the next drills, even on failure
        await load.caller.aclose()
        await server.stop()
    assert server.starts == 1
    errors = load.observed.server_errors
    assert errors, "no call met an outage"
    assert all(e["status"] == 503 for e in errors), {e["status"] for e in errors}
    assert all(e["retry_after"] and e["code"] in OUTAGE_CODES for e in errors), errors[:5]
    began, ended, traced = outage_lines(server.log_lines())
    assert (began, ended) == (OUTAGES, OUTAGES), (began, ended)
    assert not traced, traced[:3]
    print(
        f"postgres immediate stop x{OUTAGES}: {found.summary()}; "
        f"503 answers {len(errors)}, 500 answers 0; verify green"
    )
