"""ledger.hold and ledger.capture (0092, fewer statements) do exactly what 0002's versions did.

The approach of test_earn_matches_0002 and test_burn_matches_0002: two databases cloned from the
migrated template; in the reference one, ledger.hold and ledger.capture are put back to their
0002 text (the helpers they call are unchanged). The same script runs on both: holds (invalid
arguments, a wallet created by a refused hold, insufficient points, an exact balance, lots
reserved across expiries and around other holds' reservations, replays and conflicts) and
captures (no such hold, a hold no longer open, more than held, full and partial captures, lots
of the hold left unconsumed, the first capture creating redemption_margin and a partner's
settlement account, free lots, a zero redemption price and a zero margin, a wallet in debt
netted at capture, an overflowing amount, a capture after the hold's expiry time, replays and
conflicts, several in one transaction), burns and refunds of captures after them. Every
result, every error (SQLSTATE, message, detail), the ledger tables afterwards (ids included,
timestamps and transaction ids left out) and the ledger sequences must be the same.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from datetime import datetime
from typing import Any

import asyncpg

from ledger import _queries as q
from tests.support.ledger_twins import DUMPS, SEQUENCES, Recorder, at, run_on_twins

HOLD_EXPIRY = at(2031)


async def script(conn: asyncpg.Connection) -> list[Any]:
    recorder = Recorder(conn)
    out, op, earn = recorder.out, recorder.op, recorder.earn

    def hold(
        key: str | None,
        shopper: int | None,
        partner: int | None,
        points: int | None,
        expires: datetime | None = HOLD_EXPIRY,
        metadata: str | None = "{}",
    ) -> Awaitable[Any]:
        return op(str(key), q.HOLD, key, shopper, partner, points, expires, metadata)

    def capture(
        key: str | None,
        hold_id: int | None,
        points: int | None,
        price: int | None,
        metadata: str | None = "{}",
    ) -> Awaitable[Any]:
        return op(str(key), q.CAPTURE, key, hold_id, points, price, metadata)

    await hold("h-nw", 40, 1, 5)  # no wallet: created by _lock_wallet, then refused
    await hold("h-bad-shopper", 0, 1, 5)
    await earn("e1", 1, 1, 100, 5000, at(2029))
    await earn("e2", 1, 2, 50, 7000, at(2027))
    await earn("e3", 1, 3, 30, 6000, None)
    await earn("e4", 1, 1, 20, 5500, at(2027))  # same expiry as e2: after it (lot id)
    await earn("e5", 1, 4, 25, 4500, at(2028, 6))
    for key, points, partner, expires in (
        ("h-bad-points", 0, 1, HOLD_EXPIRY),
        ("h-null-points", None, 1, HOLD_EXPIRY),
        ("h-null-partner", 5, None, HOLD_EXPIRY),
        ("h-null-expiry", 5, 1, None),
    ):
        await hold(key, 1, partner, points, expires)
    await hold("", 1, 1, 5)
    await hold("k" * 201, 1, 1, 5)
    await hold(None, 1, 1, 5)
    await hold("h-too-many", 1, 1, 226)  # 225 available
    h1 = await hold("h1", 1, 9, 60, metadata='{"till": 1}')  # e2, then 10 of e4
    await hold("h1", 1, 9, 60, metadata='{"till": 1}')  # replay
    await hold("h1", 1, 9, 61, metadata='{"till": 1}')  # conflict: points
    await hold("h1", 1, 8, 60, at(2032), None)  # conflict: partner, expiry, metadata
    await hold("e1", 1, 9, 60)  # conflict: another operation
    h2 = await hold("h2", 1, 9, 30, metadata=None)  # the rest of e4, then 20 of e5
    await capture("c-not-found", 999_999, 5, 4000)
    await capture("c-bad-points", h1["hold_id"], 0, 4000)
    await capture("c-null-points", h1["hold_id"], None, 4000)
    await capture("c-bad-price", h1["hold_id"], 5, -1)
    await capture("c-null-price", h1["hold_id"], 5, None)
    await capture("", h1["hold_id"], 5, 4000)
    await capture("c-null-hold", None, 5, 4000)
    await capture("c-exceeds", h1["hold_id"], 61, 4000)
    # The first capture: creates redemption_margin and partner 9's settlement account; 40 of
    # the 60 held points, all from e2, e4's 10 released unconsumed.
    await capture("c1", h1["hold_id"], 40, 4000, '{"till": 2}')
    await capture("c1", h1["hold_id"], 40, 4000, '{"till": 2}')  # replay
    await capture("c1", h1["hold_id"], 41, 4000, '{"till": 2}')  # conflict: points
    await capture("h2", h1["hold_id"], 40, 4000)  # conflict: another operation
    await capture("c1-again", h1["hold_id"], 10, 4000)  # captured: not open
    await capture("c2", h2["hold_id"], 30, 4000)  # full capture: no wallet posting
    h3 = await hold("h3", 1, 2, 5)  # 5 of what c1 left of e2
    await capture("c-zero-margin", h3["hold_id"], 5, 7000)  # at its issue price (e2)
    h4 = await hold("h4", 1, 5, 20)
    await capture("c-zero-price", h4["hold_id"], 20, 0)
    h5 = await hold("h5", 1, 3, 15)
    await op("v5", q.VOID, "v5", h5["hold_id"], "{}")
    await capture("c-voided", h5["hold_id"], 15, 4000)
    await earn("g1", 2, None, 40, 0, at(2028), "goodwill")  # a free lot
    h6 = await hold("h6", 2, 1, 15)
    await capture("c-free", h6["hold_id"], 10, 4000)  # no deferred revenue posting
    h7 = await hold("h7", 2, 1, 5)
    await capture("c-free-zero", h7["hold_id"], 5, 0)  # only the points postings
    await earn("e6", 2, 2, 30, 5000, at(2027))
    h8 = await hold("h8", 2, 4, 40)  # e6 (sooner), then the free lot
    await capture("c-mixed", h8["hold_id"], 35, 3500)
    await hold("h-exact-too-many", 2, 1, 21)
    h9 = await hold("h-exact", 2, 1, 20)  # exactly what is available
    await hold("h-empty", 2, 1, 1)
    await capture("c-exact", h9["hold_id"], 20, 4100)
    # A hold past its expiry time is still captured until the release worker has run.
    h10 = await hold("h10", 1, 6, 10, at(2020))
    h11 = await hold("h11", 1, 6, 10, at(2020))
    await capture("c-after-expiry-time", h10["hold_id"], 10, 4000)
    await op("release", q.RELEASE_EXPIRED_HOLDS, at(2021), 100)
    await capture("c-released", h11["hold_id"], 10, 4000)
    # Overflow: points x redemption price does not fit in bigint.
    await earn("huge", 3, None, 2**62, 0, None, "goodwill")
    h12 = await hold("h12", 3, 1, 2**62)
    await capture("c-overflow", h12["hold_id"], 2**62, 3)
    await capture("c-overflow-margin", h12["hold_id"], 2**62, 2)
    await capture("c-huge-ok", h12["hold_id"], 2**40, 5)
    # Debt: a refund of an earn claws back points spent while a hold is open; the capture
    # returns the uncaptured points to the wallet, which nets them against the debt.
    e7 = await earn("e7", 4, 1, 100, 5000, at(2029))
    await earn("e8", 4, 2, 50, 6000, at(2030))
    h13 = await hold("h13", 4, 1, 60)  # all from e7
    await op("burn", q.BURN, "burn", 4, 2, 90, 4000, "{}")
    await op("r1", q.REFUND_EARN, "r1", e7["entry_id"], 100, "{}")  # e7: held, the rest spent
    await capture("c-in-debt", h13["hold_id"], 20, 4000)
    # Several captures in one transaction, one replayed, then one refused: all undone.
    await earn("e9", 5, 1, 100, 5000, at(2029))
    ha = await hold("ha", 5, 1, 30)
    hb = await hold("hb", 5, 1, 30)
    try:
        async with conn.transaction():
            for key, hold_id, points in (
                ("tx-a", ha["hold_id"], 10),
                ("tx-b", hb["hold_id"], 30),
                ("tx-a", ha["hold_id"], 10),
                ("tx-c", ha["hold_id"], 5),
            ):
                raw = await conn.fetchval(q.CAPTURE, key, hold_id, points, 4000, "{}")
                out.append(["tx", json.loads(raw)])
    except asyncpg.PostgresError as exc:
        out.append(["tx", "error", exc.sqlstate, str(exc), exc.detail])
    async with conn.transaction():
        for key, hold_id, points in (("tx2-a", ha["hold_id"], 10), ("tx2-a", ha["hold_id"], 10)):
            raw = await conn.fetchval(q.CAPTURE, key, hold_id, points, 4000, "{}")
            out.append(["tx2", json.loads(raw)])
        raw = await conn.fetchval(q.HOLD, "tx2-h", 5, 1, 20, HOLD_EXPIRY, "{}")
        out.append(["tx2", json.loads(raw)])
        raw = await conn.fetchval(q.HOLD, "tx2-h", 5, 1, 20, HOLD_EXPIRY, "{}")
        out.append(["tx2", json.loads(raw)])
        await conn.fetchval(q.CAPTURE, "tx2-c", json.loads(raw)["hold_id"], 20, 4000, "{}")
    # Refunds of captures put points back into the lots the capture consumed.
    captured = dict(o for o in out if o[0] == "c1" and len(o) == 2)["c1"]
    await op("rb1", q.REFUND_BURN, "rb1", captured["entry_id"], 25, 3600, "{}")
    await op("burn-after", q.BURN, "burn-after", 1, 6, 35, 4100, "{}")
    await op("fold", q.FOLD_DELTAS, 1000)
    h14 = await hold("h14", 5, 2, 20)
    await capture("c-after-fold", h14["hold_id"], 15, 4000)
    for table, query in DUMPS.items():
        out.append([table, [dict(r) for r in await conn.fetch(query)]])
    out.append(["sequences", [dict(r) for r in await conn.fetch(SEQUENCES)]])
    return out


async def test_hold_and_capture_do_what_0002_did(twin_dsns: tuple[str, str]) -> None:
    expected, actual = await run_on_twins(
        twin_dsns,
        restore_0002=["hold", "capture"],
        current_is_new="SELECT count(*) = 2 AND bool_and(prosrc LIKE '%ledger._claim, inline%')"
        " FROM pg_proc WHERE proname IN ('hold', 'capture')"
        " AND pronamespace = 'ledger'::regnamespace",
        script=script,
    )
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert got == want
    # The script reaches what it means to: every error kind, each kind of capture.
    errors = {(o[2], o[3].split("\n")[0]) for o in expected if len(o) > 2 and o[1] == "error"}
    assert errors == {
        ("CL001", "invalid_argument"),
        ("CL001", "insufficient_points"),
        ("CL001", "idempotency_conflict"),
        ("CL001", "hold_not_found"),
        ("CL001", "hold_not_open"),
        ("CL001", "capture_exceeds_hold"),
        ("22003", "bigint out of range"),
    }
    results = {o[0]: o[1] for o in expected if len(o) == 2 and isinstance(o[1], dict)}
    assert len(results["c1"]["postings"]) == 6
    assert len(results["c2"]["postings"]) == 5
    assert len(results["c-zero-margin"]["postings"]) == 4
    assert len(results["c-free-zero"]["postings"]) == 2
    assert results["c-in-debt"]["debt_points_after"] < results["r1"]["debt_points_after"]
    assert results["h-exact"]["balance_after"] == 0
    consumption = dict(o for o in expected if o[0] == "consumption")["consumption"]
    assert [
        (c["lot_id"], c["points"])
        for c in consumption
        if c["entry_id"] == results["c1"]["entry_id"]
    ] == [(results["e2"]["lot_id"], 40)]
