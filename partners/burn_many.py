"""A group commit's redemptions, holds and captures, written together by one call.

The caller hands over the calls it would run one by one (`Candidate`s) before running any.
One statement reads every redemption's and hold's context (`queries.BURN_CONTEXT_MANY`: the
single read per call), one every capture's (`CAPTURE_CONTEXT_MANY`, which locks the holds, in
hold id order); the calls whose read passes are written by one call of
`partner_burn_write_many` (migration 0098), which runs the single write (0094) for each in a
subtransaction of its own. Answered here: each call that was written. Left to the caller, who
runs them one by one after these, the single way, which answers what it always did:
- a call whose read refuses it (unknown or blocked card, no pricing, a ref taken; no such
  hold, a hold not open);
- a second call of the group with a partner_ref, or a hold, an earlier one uses;
- a call whose write the function rolled back (a ledger refusal such as insufficient points,
  a ref recorded concurrently, a replayed capture, a neighbour's lock conflict).

The three kinds go in one call, which first locks every wallet they burn from, in shopper id
order, then writes them in that order (a shopper's own calls in call order): two groups that
share shoppers wait for each other instead of deadlocking (each deadlock costs PostgreSQL's
deadlock_timeout, a second).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from contracts.errors import DomainError
from contracts.partners import (
    CaptureRequest,
    HoldRequest,
    HoldResult,
    RedemptionRequest,
    RedemptionResult,
)
from infra.db import Conn
from partners import queries
from partners._common import entry_of, parse_uuid
from partners.burns import (
    Capture,
    Hold,
    Redemption,
    burn_context_of,
    capture_of,
    hold_of,
    redemption_of,
)
from partners.telemetry import timed

CALLS_MAX = 1_000  # a group commit holds at most 32; a bound all the same
REDEMPTION = "redemption"
HOLD = "hold"
CAPTURE = "capture"


@dataclass(frozen=True)
class Candidate:
    """A call the caller would run by `burns.redeem` (a RedemptionRequest) or
    `burns.hold` (a HoldRequest) `(conn, partner_id, req, idempotency_key=...)`, or by
    `burns.capture_hold(conn, partner_id, hold_id, req)` (a CaptureRequest); `handle`
    names it in the answer."""

    handle: int
    partner_id: int
    req: RedemptionRequest | HoldRequest | CaptureRequest
    idempotency_key: str
    hold_id: str | None = None  # a capture's

    def __post_init__(self) -> None:
        assert isinstance(self.req, CaptureRequest) == (self.hold_id is not None), self


_Write = Redemption | Hold | Capture


async def write_together(conn: Conn, items: list[tuple[int, Candidate]]) -> dict[int, Any]:
    """`gateway.idempotency.Many.run` of the three routes: the group's (handle, candidate)
    pairs, redemptions, holds and captures alike, so that they are written in one shopper
    order."""
    return await write_many(conn, [replace(candidate, handle=h) for h, candidate in items])


async def write_many(
    conn: Conn, candidates: Sequence[Candidate]
) -> dict[int, RedemptionResult | HoldResult]:
    """Write the calls among `candidates` that can be written together; answer each one
    written by its handle."""
    assert len(candidates) <= CALLS_MAX, len(candidates)
    assert conn.is_in_transaction(), "the writes and their locks belong to the caller's"
    assert len({c.handle for c in candidates}) == len(candidates), "handles are unique"
    if not candidates:
        return {}
    ready = await _burns_ready(conn, candidates) + await _captures_ready(conn, candidates)
    # Stable: a shopper's redemptions and holds stay in call order, its captures after them
    # (in call order too).
    ready.sort(key=lambda item: item[0])
    if not ready:
        return {}
    with timed("burn_many"):
        rows = await conn.fetch(
            queries.BURN_WRITE_MANY,
            sorted({shopper_id for shopper_id, _, _ in ready}),
            *_columns([_row(w) for _, _, w in ready]),
        )
    assert [row["n"] for row in rows] == list(range(1, len(ready) + 1)), "a row per call"
    results: dict[int, RedemptionResult | HoldResult] = {}
    for (_, candidate, written), row in zip(ready, rows, strict=True):
        if row["refused"] is None:
            entry = entry_of(row["written"])
            assert not entry.replayed, "0098 refuses a replayed key"
            results[candidate.handle] = written.result(entry)
    return results


_Ready = list[tuple[int, Candidate, _Write]]  # (shopper id, call, its write)


async def _burns_ready(conn: Conn, candidates: Sequence[Candidate]) -> _Ready:
    """The redemptions and holds whose read passes, each with its write."""
    burns = [(c, c.req) for c in candidates if isinstance(c.req, RedemptionRequest | HoldRequest)]
    if not burns:
        return []
    rows = await conn.fetch(
        queries.BURN_CONTEXT_MANY,
        [c.partner_id for c, _ in burns],
        [req.card_number for _, req in burns],
        [req.partner_ref for _, req in burns],
    )
    assert [row["n"] for row in rows] == list(range(1, len(burns) + 1)), "a row per call"
    ready: _Ready = []
    refs: set[tuple[int, str]] = set()
    for (candidate, req), row in zip(burns, rows, strict=True):
        ref = (candidate.partner_id, req.partner_ref)
        if ref in refs:
            continue  # the group's second use of a ref: the single path refuses it
        refs.add(ref)
        try:
            ctx = burn_context_of(row, req.card_number, req.partner_ref)
        except DomainError:
            continue  # the single path raises the same refusal
        key = candidate.idempotency_key
        written: _Write = (
            redemption_of(ctx, candidate.partner_id, req, idempotency_key=key)
            if isinstance(req, RedemptionRequest)
            else hold_of(ctx, candidate.partner_id, req, idempotency_key=key)
        )
        ready.append((ctx.holder.shopper_id, candidate, written))
    return ready


async def _captures_ready(conn: Conn, candidates: Sequence[Candidate]) -> _Ready:
    """The captures whose read passes, each with its write; the holds are locked by the read,
    in hold id order (as two groups capturing the same holds would take them)."""
    by_hold: dict[tuple[int, Any], Candidate] = {}
    for candidate in candidates:
        if candidate.hold_id is None:
            continue
        try:
            hold_id = parse_uuid(candidate.hold_id)
        except DomainError:
            continue  # not an id of ours: the single path answers 404
        by_hold.setdefault((candidate.partner_id, hold_id), candidate)  # a second: single path
    if not by_hold:
        return []
    holds = sorted(by_hold, key=lambda pair: pair[1])
    rows = await conn.fetch(
        queries.CAPTURE_CONTEXT_MANY, [h for _, h in holds], [p for p, _ in holds]
    )
    assert [row["n"] for row in rows] == list(range(1, len(holds) + 1)), "a row per call"
    row_of = dict(zip(holds, rows, strict=True))
    ready: _Ready = []
    for pair, candidate in by_hold.items():  # in call order
        row = row_of[pair]
        assert isinstance(candidate.req, CaptureRequest), candidate
        try:
            capture = capture_of(
                None if row["id"] is None else row, candidate.partner_id, candidate.req
            )
        except DomainError:
            continue  # the single path raises the same refusal
        ready.append((capture.hold["shopper_id"], candidate, capture))
    return ready


def _row(written: _Write) -> tuple[Any, ...]:
    """BURN_WRITE_MANY's row for one call: its kind's arguments (REDEEM_WRITE's, HOLD_WRITE's
    or CAPTURE_WRITE's, in their order) at their places, NULL where the kind takes none."""
    if isinstance(written, Redemption):
        tid, pid, ref, sid, card, points, value, version, key, ledger, price, meta, payload = (
            written.arguments
        )
        return (REDEMPTION, tid, pid, ref, sid, card, points, value, version, key, ledger, price,
                None, meta, payload, None)  # fmt: skip
    if isinstance(written, Hold):
        tid, pid, ref, sid, card, points, version, key, ledger, expires_at, meta = written.arguments
        return (HOLD, tid, pid, ref, sid, card, points, None, version, key, ledger, None,
                expires_at, meta, None, None)  # fmt: skip
    tid, pid, ledger, hold, points, value, price, meta = written.arguments
    return (CAPTURE, tid, pid, None, None, None, points, value, None, None, ledger, price, None,
            meta, None, hold)  # fmt: skip


def _columns(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Rows of arguments as one array per column."""
    return [list(column) for column in zip(*rows, strict=True)]
