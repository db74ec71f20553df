"""A restart mid-backlog loses nothing: `coalition serve` is killed (SIGKILL: no clean shutdown,
leases left behind) while 1,000 purchase events are being delivered, a new server is started
on the same database, and the receiver sees every message's webhook-id at least once. The
duplicates (sent by the killed server, unrecorded, sent again) are counted and reported."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from gateway.tokens import load_or_create
from tests.support.partner_network import Onboarded, onboard, signed
from tests.support.server import free_port
from tests.webhooks.endpoints import add_endpoint, network_box
from tests.webhooks.receiver import receiving
from tests.webhooks.support import state_of, wait_for

EVENTS = 1_000
SHOPPERS = 50
READY_WAIT_S = 60.0
KILL_AFTER_RECEIVED = 150
SLOW_ANSWER_S = 0.01  # keeps a backlog long enough to kill the server in the middle of it


def serve(database_url: str, data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COALITION_")}
    env.update(
        {
            "DATABASE_URL": database_url,
            "COALITION_DATA_DIR": str(data_dir),
            "COALITION_WEBHOOKS_ALLOW_LOOPBACK": "1",
            "COALITION_WEBHOOK_RETRY_SCHEDULE_S": "0,1,1",
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_WAIT_S
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            assert process.poll() is None, "the server exited"
            try:
                if (await http.get(f"{url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    pytest.fail("the server did not become ready")


def slow_ok(_: int) -> int:
    time.sleep(SLOW_ANSWER_S)
    return 200


async def post_backlog(url: str, shop: Onboarded) -> None:
    async with shop.client(url) as client:
        cards = [(await client.enroll()).card_number for _ in range(SHOPPERS)]
    items = [
        {
            "partner_ref": f"r-{n}",
            "card_number": cards[n % SHOPPERS],
            "amount_minor": 100 + n,
            "currency": "EUR",
        }
        for n in range(EVENTS)
    ]
    body = json.dumps({"items": items}).encode()
    headers = signed(
        shop, "POST", f"{url}/v1/purchases/batch", body, idempotency_key=uuid.uuid4().hex
    )
    async with httpx.AsyncClient(timeout=120) as http:
        answer = await http.post(f"{url}/v1/purchases/batch", content=body, headers=headers)
    assert answer.status_code == 201, answer.text
    assert answer.json()["created"] == EVENTS


async def test_a_killed_server_loses_no_event_of_its_backlog(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    first_url_port = free_port()
    first = serve(database_url, data_dir, first_url_port)
    second: subprocess.Popen[bytes] | None = None
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert pool is not None
    try:
        url = f"http://127.0.0.1:{first_url_port}"
        await ready(url, first)
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            shop = await onboard(http, load_or_create(data_dir, None), "restart-shop")
        with receiving(slow_ok) as receiver:
            async with pool.acquire() as conn:
                endpoint_id, _ = await add_endpoint(
                    conn, network_box(data_dir), shop.partner_id, receiver.url
                )
            await post_backlog(url, shop)

            async def midway() -> bool:
                return len(receiver.requests) >= KILL_AFTER_RECEIVED

            await wait_for(midway, what="deliveries under way")
            first.kill()  # SIGKILL: sends in flight, leases left behind
            first.wait(timeout=30)
            received_at_kill = len(receiver.requests)
            assert received_at_kill < EVENTS, "the backlog was gone before the kill"

            second_port = free_port()
            second = serve(database_url, data_dir, second_port)
            await ready(f"http://127.0.0.1:{second_port}", second)

            async def all_delivered() -> bool:
                states = [m["state"] for m in await state_of(pool, endpoint_id)]
                return len(states) == EVENTS and set(states) == {"delivered"}

            await wait_for(all_delivered, what="every message delivered", wait_s=120)
            messages = {m["public_id"] for m in await state_of(pool, endpoint_id)}
            seen = receiver.ids()
        assert len(messages) == EVENTS
        assert set(seen) == messages  # none lost, nothing else
        duplicates = len(seen) - len(set(seen))
        with capsys.disabled():
            print(
                f"\nrestart mid-backlog: {EVENTS} events, {received_at_kill} received before "
                f"the kill, {len(seen)} requests in all, {duplicates} duplicate(s)"
            )
    finally:
        await pool.close()
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
