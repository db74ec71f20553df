"""ledger.burn (0091, fewer statements) does exactly what 0002's ledger.burn did.

The approach of test_earn_matches_0002: two databases cloned from the migrated template; in the
reference one, ledger.burn is put back to its 0002 text (the helpers it calls are unchanged).
The same script of operations runs on both: first use of every account a burn posts to (a new
redeeming partner, redemption_margin), invalid arguments, a wallet created by a refused burn,
an exact balance, insufficient points, lots consumed across expiries (never-expiring last, ties
by lot id) and around reserved points, free lots and a zero redemption price and a zero margin
(zero postings skipped), replays and conflicting replays (other arguments, another operation,
twice in one transaction), an overflowing amount, burns after expiry, after a merge, in and
after refund-clawback debt, and refunds of burns. Every result, every error (SQLSTATE, message,
detail), the ledger tables afterwards (ids included, timestamps and transaction ids left out)
and the ledger sequences must be the same.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any

import asyncpg

from ledger import _queries as q
from tests.support.ledger_twins import DUMPS, SEQUENCES, Recorder, at, run_on_twins


async def script(conn: asyncpg.Connection) -> list[Any]:
    recorder = Recorder(conn)
    out, op, earn = recorder.out, recorder.op, recorder.earn

    def burn(
        key: str | None,
        shopper: int | None,
        partner: int | None,
        points: int | None,
        price: int | None,
        metadata: str | None = "{}",
    ) -> Awaitable[Any]:
        return op(str(key), q.BURN, key, shopper, partner, points, price, metadata)

    # Before any burn: no redemption_margin account yet, partner 9 has no settlement account.
    await burn("nw", 40, 1, 5, 4000)  # no wallet: created by _lock_wallet, then refused
    await burn("bad-shopper", 0, 1, 5, 4000)
    await burn("null-shopper", None, 1, 5, 4000)
    await earn("e1", 1, 1, 100, 5000, at(2029))
    await earn("e2", 1, 2, 50, 7000, at(2027))
    await earn("e3", 1, 3, 30, 6000, None)
    await earn("e4", 1, 1, 20, 5500, at(2027))  # same expiry as e2: after it (lot id)
    await earn("e5", 1, 4, 25, 4500, at(2028, 6))
    first = await burn("b-first", 1, 9, 60, 4000, '{"till": 3}')  # e2, then e4 (same expiry)
    await burn("b-first", 1, 9, 60, 4000, '{"till": 3}')  # replay
    await burn("b-first", 1, 9, 61, 4000, '{"till": 3}')  # conflict: points
    await burn("b-first", 1, 8, 60, 4001, None)  # conflict: partner, price, metadata
    await burn("e1", 1, 9, 60, 4000)  # conflict: another operation
    await earn("b-first", 1, 9, 60, 4000)  # an earn on a burn's key
    for key, points, price in (
        ("bad-points", 0, 4000),
        ("neg-points", -3, 4000),
        ("null-points", None, 4000),
        ("bad-price", 5, -1),
        ("null-price", 5, None),
    ):
        await burn(key, 1, 1, points, price)
    await burn("null-partner", 1, None, 5, 4000)
    await burn("", 1, 1, 5, 4000)
    await burn("k" * 201, 1, 1, 5, 4000)
    await burn(None, 1, 1, 5, 4000)
    await burn("too-many", 1, 1, 166, 4000)  # 165 available
    await burn("b-null-meta", 1, 2, 1, 3000, None)
    await burn("b-zero-margin", 1, 2, 9, 5500)  # the rest of e4 at its issue price: no margin
    await burn("b-zero-price", 1, 5, 20, 0)  # from e5, nothing paid to the partner
    hold = await op("h1", q.HOLD, "h1", 1, 1, 30, at(2031), "{}")  # e5's last 5, 25 of e1
    await burn("b-reserved", 1, 3, 85, 4200)  # e1's free 75, then e3 (never expires)
    await burn("b-exact", 1, 3, 20, 4200)  # exactly what is available
    await burn("b-empty", 1, 3, 1, 4200)  # nothing available, 30 held
    await op("v1", q.VOID, "v1", hold["hold_id"], "{}")
    await burn("b-after-void", 1, 1, 10, 3000)
    await earn("g1", 2, None, 40, 0, at(2028), "goodwill")  # a free lot
    await burn("b-free", 2, 1, 15, 4000)  # no deferred revenue posting
    await burn("b-free-zero", 2, 1, 5, 0)  # only the points postings
    await earn("e6", 2, 2, 30, 5000, at(2027))
    await burn("b-mixed", 2, 4, 40, 3500)  # e6 (sooner), then the free lot
    await earn("huge", 3, None, 2**62, 0, None, "goodwill")
    await burn("overflow", 3, 1, 2**62, 3)  # both money amounts overflow
    await burn("overflow-margin", 3, 1, 2**62, 2)  # settlement -2^63 fits, margin does not
    await burn("b-huge-ok", 3, 1, 2**40, 5)
    # Several burns in one transaction, a key replayed inside it, then one refused: all undone.
    await earn("e7", 4, 1, 100, 5000, at(2029))
    try:
        async with conn.transaction():
            for key, points in (("tx-a", 10), ("tx-b", 20), ("tx-a", 10), ("tx-c", 500)):
                raw = await conn.fetchval(q.BURN, key, 4, 2, points, 4000, "{}")
                out.append(["tx", json.loads(raw)])
    except asyncpg.PostgresError as exc:
        out.append(["tx", "error", exc.sqlstate, str(exc), exc.detail])
    async with conn.transaction():
        for key, points in (("tx2-a", 10), ("tx2-b", 20), ("tx2-a", 10)):
            raw = await conn.fetchval(q.BURN, key, 4, 2, points, 4000, "{}")
            out.append(["tx2", json.loads(raw)])
        try:
            async with conn.transaction():
                await conn.fetchval(q.BURN, "tx2-a", 4, 2, 11, 4000, "{}")
        except asyncpg.PostgresError as exc:
            out.append(["tx2", "error", exc.sqlstate, str(exc), exc.detail])
    # Refunds of burns put points back into the lots the burn consumed.
    await op("rb1", q.REFUND_BURN, "rb1", first["entry_id"], 30, 4000, "{}")
    await burn("b-after-refund", 1, 6, 35, 4100)
    # Expiry: e8 is gone; the burn takes what is left, soonest expiry first.
    await earn("e8", 5, 1, 10, 5000, at(2026))
    await earn("e9", 5, 2, 20, 6000, at(2026, 6))
    await earn("e10", 5, 3, 30, 7000, at(2032))
    await op("expire", q.EXPIRE_LOTS, at(2026, 3), 100)
    await burn("b-after-expiry-too-many", 5, 1, 51, 4000)
    await burn("b-after-expiry", 5, 1, 45, 4000)
    # Merge: shopper 6's lots move to shopper 7 with their expiries.
    await earn("e11", 6, 1, 40, 5000, at(2029))
    await earn("e12", 6, 2, 40, 6000, at(2028))
    await earn("e13", 7, 3, 40, 7000, at(2031))
    await op("t1", q.TRANSFER_ALL, "t1", 6, 7, "{}")
    await burn("b-merged-from", 6, 1, 1, 4000)
    await burn("b-merged-into", 7, 1, 100, 4000)
    # Debt: a refund of an earn claws back points already spent.
    e14 = await earn("e14", 8, 1, 100, 5000, at(2029))
    await burn("b-before-debt", 8, 2, 90, 4000)
    await op("r1", q.REFUND_EARN, "r1", e14["entry_id"], 100, "{}")
    await burn("b-in-debt", 8, 2, 1, 4000)
    await earn("e15", 8, 3, 95, 6000, at(2030))  # repays 90, a lot of 5
    await burn("b-after-debt-too-many", 8, 2, 6, 4000)
    await burn("b-after-debt", 8, 2, 5, 4000)
    await op("fold", q.FOLD_DELTAS, 1000)
    await burn("b-after-fold", 7, 2, 5, 4000)
    for table, query in DUMPS.items():
        out.append([table, [dict(r) for r in await conn.fetch(query)]])
    out.append(["sequences", [dict(r) for r in await conn.fetch(SEQUENCES)]])
    return out


async def test_burn_does_what_0002_burn_did(twin_dsns: tuple[str, str]) -> None:
    expected, actual = await run_on_twins(
        twin_dsns,
        restore_0002=["burn"],
        current_is_new="SELECT prosrc LIKE '%The usual burn%' FROM pg_proc WHERE oid = "
        "'ledger.burn(text, bigint, bigint, bigint, bigint, jsonb)'::regprocedure",
        script=script,
    )
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert got == want
    # The script reaches what it means to: every error kind, and both posting statements.
    errors = {(o[2], o[3].split("\n")[0]) for o in expected if len(o) > 2 and o[1] == "error"}
    assert errors == {
        ("CL001", "invalid_argument"),
        ("CL001", "insufficient_points"),
        ("CL001", "idempotency_conflict"),
        ("22003", "bigint out of range"),
    }
    results = {o[0]: o[1] for o in expected if len(o) == 2 and isinstance(o[1], dict)}
    assert len(results["b-first"]["postings"]) == 5
    assert len(results["b-zero-margin"]["postings"]) == 4
    assert len(results["b-free-zero"]["postings"]) == 2
    assert results["b-exact"]["balance_after"] == 0
    # Soonest expiry first, ties by lot id: b-first took all of e2, then 10 of e4.
    consumption = dict(o for o in expected if o[0] == "consumption")["consumption"]
    assert [
        (c["lot_id"], c["points"])
        for c in consumption
        if c["entry_id"] == results["b-first"]["entry_id"]
    ] == [(results["e2"]["lot_id"], 50), (results["e4"]["lot_id"], 10)]
