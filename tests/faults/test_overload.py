"""Overload: a stuck statement, a lock wait and an exhausted pool end in 503 problem+json with
`Retry-After` (code database_busy) within their bounds, never a hang; the call is then retried
with its own key and applies once."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import msgspec
import pytest

from contracts.errors import ErrorCode
from contracts.partners import PurchaseRequest
from gateway import errors
from infra import db
from tests.faults import network
from tests.faults.harness import Server

# Every purchase writes its partner transaction: with the table locked, it waits.
LOCK_TRANSACTIONS = "LOCK TABLE partner_transactions IN ACCESS EXCLUSIVE MODE"


async def test_a_statement_stuck_on_a_lock_answers_503_then_the_retry_applies_once(
    drill_database: str, tmp_path: Path
) -> None:
    bounds = {
        "COALITION_DB_STATEMENT_TIMEOUT_MS": "1000",
        "COALITION_DB_LOCK_TIMEOUT_MS": "0",  # the statement bound, not the lock one, ends it
        "COALITION_WORKERS": "0",
    }
    server = Server(drill_database, tmp_path, tmp_path / "server.log", env_extra=bounds)
    await server.start()
    try:
        net = await network.build(server.url, tmp_path, slug="overload", shoppers=1)
        card = net.cards[0]
        caller = net.caller(server.url)
        body = msgspec.json.encode(
            PurchaseRequest(
                partner_ref="stuck-1", card_number=card.number, amount_minor=1000, currency="EUR"
            )
        )
        key = f"purchase-{uuid.uuid4()}"
        blocker = await asyncpg.connect(drill_database)
        try:
            async with blocker.transaction():
                await blocker.execute(LOCK_TRANSACTIONS)
                stuck = await caller.call("POST", "/v1/purchases", body, key)
        finally:
            await blocker.close()
        assert stuck.status_code == 503, stuck.text
        assert stuck.json()["code"] == ErrorCode.DATABASE_BUSY
        assert stuck.headers["retry-after"] == "1"
        retried = await caller.call("POST", "/v1/purchases", body, key)
        assert retried.status_code == 201, retried.text
        again = await caller.call("POST", "/v1/purchases", body, key)
        assert again.headers.get("idempotency-replayed") == "true"
        assert again.json()["transaction_id"] == retried.json()["transaction_id"]
        await caller.aclose()
    finally:
        await server.stop()


async def test_a_lock_wait_past_lock_timeout_is_database_busy(drill_database: str) -> None:
    pool = await db.create_pool(
        drill_database, size_min=1, size_max=2, reset_session=False, lock_timeout_ms=200
    )
    blocker = await asyncpg.connect(drill_database)
    try:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE partners IN ACCESS EXCLUSIVE MODE")
            async with pool.acquire() as conn:
                with pytest.raises(asyncpg.LockNotAvailableError) as refused:
                    await conn.fetchval("SELECT count(*) FROM partners")
        problem = errors.from_database(refused.value)
        assert problem is not None
        assert problem.status_code == 503
        assert problem.extra == {"code": ErrorCode.DATABASE_BUSY}
        assert problem.headers == {"Retry-After": "1"}
    finally:
        await blocker.close()
        await pool.close()


async def test_an_exhausted_pool_answers_busy_after_the_acquire_timeout(
    drill_database: str,
) -> None:
    pool = await db.create_pool(
        drill_database, size_min=1, size_max=1, reset_session=False, acquire_timeout_s=0.2
    )
    try:
        async with pool.acquire():  # the only connection, held
            with pytest.raises(TimeoutError) as waited:
                async with pool.acquire():
                    pass
        problem = errors.from_database(waited.value)
        assert problem is not None
        assert problem.status_code == 503
        assert problem.extra == {"code": ErrorCode.DATABASE_BUSY}
    finally:
        await pool.close()
