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
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from ledger import _queries as q
from tests.support.ledger_twins import DUMPS, Recorder, at, run_on_twins


async def script(conn: asyncpg.Connection) -> list[Any]:
    recorder = Recorder(conn)
    out, op, earn = recorder.out, recorder.op, recorder.earn

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


async def test_earn_does_what_0002_earn_did(twin_dsns: tuple[str, str]) -> None:
    expected, actual = await run_on_twins(
        twin_dsns,
        restore_0002=["earn"],
        current_is_new="SELECT prosrc LIKE '%The usual earn%' FROM pg_proc WHERE oid = "
        "'ledger.earn(text, bigint, bigint, bigint, bigint, timestamptz, text, jsonb)'"
        "::regprocedure",
        script=script,
    )
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert got == want
    errors = [o for o in expected if len(o) > 2 and o[1] == "error"]
    assert {o[2] for o in errors} == {"CL001", "22003"}
