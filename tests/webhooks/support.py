"""Running the webhook worker against a test database until a condition holds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from infra.settings import Settings
from partners.webhooks.worker import WebhookWorker

WAIT_S_MAX = 60.0
POLL_S = 0.05


def worker_for(data_dir: Path, schedule_s: tuple[int, ...] = (0, 0, 0)) -> WebhookWorker:
    settings = Settings(
        data_dir=data_dir, webhooks_allow_loopback=True, webhook_retry_schedule_s=schedule_s
    )
    return WebhookWorker(settings)


async def wait_for(
    condition: Callable[[], Awaitable[bool]], *, what: str, wait_s: float = WAIT_S_MAX
) -> None:
    """Poll `condition` until it holds; fail naming `what` after `wait_s` (a bound, not a
    timing assertion: the condition is what the test asserts)."""
    try:
        async with asyncio.timeout(wait_s):
            while not await condition():  # noqa: ASYNC110 (polls the database)
                await asyncio.sleep(POLL_S)
    except TimeoutError:
        pytest.fail(f"not within {wait_s:g} s: {what}")


@asynccontextmanager
async def running(worker: WebhookWorker, pool: asyncpg.Pool) -> AsyncIterator[None]:
    """Fan out and deliver in the background, as the server's scheduler does."""

    async def loop() -> None:
        while True:
            await worker.fan_out(pool)
            await worker.deliver(pool)
            await asyncio.sleep(POLL_S)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def state_of(pool: asyncpg.Pool, endpoint_id: int) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT message_id, public_id, state, attempts_made FROM webhooks.message"
        " WHERE endpoint_id = $1 ORDER BY message_id",
        endpoint_id,
    )


async def attempts(pool: asyncpg.Pool, message_id: int) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT trigger, response_status, error, response_body FROM webhooks.attempt"
        " WHERE message_id = $1 ORDER BY attempt_id",
        message_id,
    )
