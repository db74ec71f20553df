"""ledger.earn (0087, fewer statements) does exactly what 0002's ledger.earn did.

Two databases cloned from the migrated template: in the reference one, ledger.earn is put back
to its 0002 text (the helpers it calls are unchanged). The same script of operations (first
use of every account, replays and conflicts, invalid arguments, an overflowing amount, a zero
issue price, goodwill, burns, holds, a refund clawback into debt and the earns that repay it,
expiry, a merge, a refund of a burn, a key used twice in one transaction) runs on both; every
result, every error (SQLSTATE, message, detail) and the ledger tables afterwards (ids included,
timestamps and transaction ids left out) must be the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from infra import migrations
from ledger import _queries as q
from tests.conftest import TEMPLATE_DB
from tests.support.databases import create_database, drop_database

DUMPS = {
    "account": "SELECT account_id, owner_kind, owner_id, purpose, asset, floor_rule, rollup, name"
    " FROM ledger.account ORDER BY 1",
    "entry": "SELECT entry_id, kind, idempotency_key, shopper_id, partner_id, corrects_entry_id,"
    " args, metadata FROM ledger.entry ORDER BY 1",
    "posting": "SELECT posting_id, entry_id, account_id, asset, amount FROM ledger.posting"
    " ORDER BY 1",
    "operation": "SELECT idempotency_key, operation, args, entry_id, result FROM ledger.operation"
    " ORDER BY 1",
    "wallet": "SELECT * FROM ledger.wallet ORDER BY 1",
    "lot": "SELECT shopper_id, lot_id, root_lot_id, entry_id, partner_id, issue_price_micros,"
    " origin, expires_at, points, remaining, reserved FROM ledger.lot ORDER BY 1, 2",
    "hold": "SELECT * FROM ledger.hold ORDER BY 1, 2",
    "hold_lot": "SELECT * FROM ledger.hold_lot ORDER BY 1, 2, 3",
    "consumption": "SELECT * FROM ledger.consumption ORDER BY 1, 2, 3",
    "account_balance": "SELECT account_id, balance FROM ledger.account_balance ORDER BY 1",
    "balance_delta": "SELECT * FROM ledger.balance_delta ORDER BY 1",
    "seal_queue": "SELECT * FROM ledger.seal_queue ORDER BY 1",
}


def earn_0002() -> str:
    """0002's CREATE FUNCTION ledger.earn, as CREATE OR REPLACE."""
    text = (migrations.MIGRATIONS_DIR / "0002_ledger.sql").read_text(encoding="utf-8")
    match = re.search(r"CREATE FUNCTION ledger\.earn\(.*?\nEND \$\$;", text, re.DOTALL)
    assert match is not None
    return match[0].replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


def at(year: int, month: int = 1) -> datetime:
    return datetime(year, month, 1, tzinfo=UTC)


LOT_EXPIRY = at(2030)


async def script(conn: asyncpg.Connection) -> list[Any]:
    out: list[Any] = []

    async def op(name: str, query: str, *args: Any) -> Any:
        try:
            async with conn.transaction():
                raw = await conn.fetchval(query, *args)
        except asyncpg.PostgresError as exc:
            out.append([name, "error", exc.sqlstate, str(exc), exc.detail])
            return None
        value = json.loads(raw) if isinstance(raw, str) else raw
        out.append([name, value])
        return value

    def earn(
        key: str,
        shopper: int,
        partner: int | None,
        points: int,
        price: int,
        expires: datetime | None = LOT_EXPIRY,
        kind: str = "earn",
        metadata: str = "{}",
    ) -> Awaitable[Any]:
        return op(key, q.EARN, key, shopper, partner, points, price, expires, kind, metadata)

    call: Callable[..., Awaitable[Any]] = op
    await earn("g0", 1, None, 10, 0, None, "goodwill", '{"reason": "first"}')
    await earn("e1", 1, 1, 100, 5000)
    await earn("e1", 1, 1, 100, 5000)
    await earn("e1", 1, 1, 101, 5000, metadata='{"a": 1}')
    await call("e1-burn", q.BURN, "e1", 1, 1, 5, 4000, "{}")
    await earn("e2", 2, 2, 50, 7000, at(2029, 6))
    await earn("e3", 3, 1, 30, 0)
    await earn("e4", 4, None, 20, 3000, None, "goodwill")
    await earn("e5", 5, 3, 40, 2500, at(2028))
    await earn("bad-points", 1, 1, 0, 5000)
    await earn("bad-price", 1, 1, 10, -1)
    await earn("bad-kind", 1, 1, 10, 1, kind="burn")
    await earn("", 1, 1, 10, 1)
    await earn("k" * 201, 1, 1, 10, 1)
    await earn("bad-shopper", 0, 1, 10, 1)
    await earn("overflow", 6, 1, 2**62, 5000)
    await earn("huge-price", 6, 5, 1, 2**62)
    await earn("e6", 6, 4, 10, 5000, at(2027))
    for i in range(8):
        await earn(f"m{i}", 1 + i % 6, 1 + i % 4, 10 + i, 1000 * (i + 1), at(2027 + i % 3, 1 + i))
    burn = await call("b1", q.BURN, "b1", 1, 2, 60, 4000, "{}")
    await call("b2", q.BURN, "b2", 2, 1, 500, 4000, "{}")
    hold = await call("h1", q.HOLD, "h1", 2, 1, 20, at(2026, 12), "{}")
    await call("c1", q.CAPTURE, "c1", hold["hold_id"], 5, 3000, "{}")
    await call("h2", q.HOLD, "h2", 5, 1, 10, at(2020), "{}")
    hold = await call("h3", q.HOLD, "h3", 1, 1, 5, at(2030), "{}")
    await call("v3", q.VOID, "v3", hold["hold_id"], "{}")
    await call("b3", q.BURN, "b3", 1, 1, 50, 4500, "{}")
    await call("r1", q.REFUND_EARN, "r1", 2, 100, "{}")  # clawback: shopper 1 in debt
    await earn("d1", 1, 2, 3, 6000)  # repays part of the debt, no lot
    await earn("d2", 1, 1, 500, 0)  # repays the rest at a zero issue price
    await earn("d3", 1, 3, 1000, 5500)
    await call("rb", q.REFUND_BURN, "rb", burn["entry_id"], 10, 3600, "{}")
    await call("expire", q.EXPIRE_LOTS, at(2028, 6), 100)
    await call("release", q.RELEASE_EXPIRED_HOLDS, at(2026), 100)
    await call("t1", q.TRANSFER_ALL, "t1", 3, 4, "{}")
    await earn("merged", 3, 1, 10, 5000)
    await earn("e8", 7, 9, 10, 5000)
    await call("gd", q.GOODWILL_DEBIT, "gd", 4, None, 5, "y", "{}")
    await call("sp", q.SETTLEMENT_PAYMENT, "sp", 1, 12345, "{}")
    try:
        async with conn.transaction():
            for points in (10, 10, 11):
                raw = await conn.fetchval(q.EARN, "tx1", 8, 1, points, 5000, at(2030), "earn", "{}")
                out.append(["tx1", json.loads(raw)])
    except asyncpg.PostgresError as exc:
        out.append(["tx1", "error", exc.sqlstate, str(exc), exc.detail])
    await call("fold", q.FOLD_DELTAS, 1000)
    await earn("z1", 2, 1, 7, 3000)
    await earn("z2", 1, None, 7, 0, None, "goodwill")
    for table, query in DUMPS.items():
        out.append([table, [dict(r) for r in await conn.fetch(query)]])
    return out


@pytest.fixture(scope="module")
async def twin_dsns(server_dsn: str, template_dsn: str) -> AsyncIterator[tuple[str, str]]:
    reference = await create_database(server_dsn, template=TEMPLATE_DB)
    current = await create_database(server_dsn, template=TEMPLATE_DB)
    try:
        yield reference, current
    finally:
        await drop_database(server_dsn, reference)
        await drop_database(server_dsn, current)


async def test_earn_does_what_0002_earn_did(twin_dsns: tuple[str, str]) -> None:
    reference_dsn, current_dsn = twin_dsns
    reference = await asyncpg.connect(reference_dsn)
    current = await asyncpg.connect(current_dsn)
    try:
        await reference.execute(earn_0002())
        assert await current.fetchval(
            "SELECT prosrc LIKE '%The usual earn%' FROM pg_proc WHERE oid = "
            "'ledger.earn(text, bigint, bigint, bigint, bigint, timestamptz, text, jsonb)'"
            "::regprocedure"
        )
        expected = await script(reference)
        actual = await script(current)
    finally:
        await reference.close()
        await current.close()
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert got == want
    errors = [o for o in expected if len(o) > 2 and o[1] == "error"]
    assert {o[2] for o in errors} == {"CL001", "22003"}
