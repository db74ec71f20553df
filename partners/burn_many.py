"""A group commit's redemptions and holds, written together by one call.

The caller hands over the calls it would run one by one (`Candidate`s) before running any.
One statement reads every call's context (`queries.BURN_CONTEXT_MANY`: the single read per
call); the calls whose read passes are written by one call of `partner_burn_write_many`
(migration 0098), which runs the single write (0094) for each in a subtransaction of its own.
Answered here: each call that was written. Left to the caller, who runs them one by one after
these, the single way, which answers what it always did:
- a call whose read refuses it (unknown or blocked card, no pricing, a ref taken);
- a second call of the group with a partner_ref an earlier one uses;
- a call whose write the function rolled back (a ledger refusal such as insufficient points,
  a ref recorded concurrently, a neighbour's lock conflict).

Redemptions and holds go in one call, in shopper id order (a shopper's own calls in call
order), so that every group takes the wallets it burns from in one order: two groups that
share shoppers wait for each other instead of deadlocking (each deadlock costs PostgreSQL's
deadlock_timeout, a second).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from contracts.errors import DomainError
from contracts.partners import HoldRequest, HoldResult, RedemptionRequest, RedemptionResult
from infra.db import Conn
from partners import operations, queries
from partners._common import entry_of
from partners.telemetry import timed

CALLS_MAX = 1_000  # a group commit holds at most 32; a bound all the same
REDEMPTION = "redemption"
HOLD = "hold"


@dataclass(frozen=True)
class Candidate:
    """A call the caller would run by `operations.redeem` (a RedemptionRequest) or
    `operations.hold` (a HoldRequest) `(conn, partner_id, req, idempotency_key=...)`; `handle`
    names it in the answer."""

    handle: int
    partner_id: int
    req: RedemptionRequest | HoldRequest
    idempotency_key: str


_Write = operations.Redemption | operations.Hold


async def write_together(conn: Conn, items: list[tuple[int, Candidate]]) -> dict[int, Any]:
    """`gateway.idempotency.Many.run` of both routes: the group's (handle, candidate) pairs,
    redemptions and holds alike, so that they are written in one shopper order."""
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
    ready = _ready(candidates, await _read(conn, candidates))
    if not ready:
        return {}
    with timed("burn_many"):
        rows = await conn.fetch(queries.BURN_WRITE_MANY, *_columns([_row(w) for _, w in ready]))
    assert [row["n"] for row in rows] == list(range(1, len(ready) + 1)), "a row per call"
    results: dict[int, RedemptionResult | HoldResult] = {}
    for (candidate, written), row in zip(ready, rows, strict=True):
        if row["refused"] is None:
            entry = entry_of(row["written"])
            assert not entry.replayed, "0098 refuses a replayed key"
            results[candidate.handle] = written.result(entry)
    return results


async def _read(conn: Conn, candidates: Sequence[Candidate]) -> list[Any]:
    rows = await conn.fetch(
        queries.BURN_CONTEXT_MANY,
        [c.partner_id for c in candidates],
        [c.req.card_number for c in candidates],
        [c.req.partner_ref for c in candidates],
    )
    assert [row["n"] for row in rows] == list(range(1, len(candidates) + 1)), "a row per call"
    return rows


def _ready(candidates: Sequence[Candidate], rows: Sequence[Any]) -> list[tuple[Candidate, _Write]]:
    """The calls whose read passes, each with its write, in shopper id order."""
    ready: list[tuple[int, Candidate, _Write]] = []
    refs: set[tuple[int, str]] = set()
    for candidate, row in zip(candidates, rows, strict=True):
        req = candidate.req
        ref = (candidate.partner_id, req.partner_ref)
        if ref in refs:
            continue  # the group's second use of a ref: the single path refuses it
        refs.add(ref)
        try:
            ctx = operations.burn_context_of(row, req.card_number, req.partner_ref)
        except DomainError:
            continue  # the single path raises the same refusal
        key = candidate.idempotency_key
        written: _Write = (
            operations.redemption_of(ctx, candidate.partner_id, req, idempotency_key=key)
            if isinstance(req, RedemptionRequest)
            else operations.hold_of(ctx, candidate.partner_id, req, idempotency_key=key)
        )
        ready.append((ctx.holder.shopper_id, candidate, written))
    ready.sort(key=lambda item: item[0])  # stable: a shopper's calls stay in call order
    return [(candidate, written) for _, candidate, written in ready]


def _row(written: _Write) -> tuple[Any, ...]:
    """BURN_WRITE_MANY's row for one call: its kind's arguments (REDEEM_WRITE's or
    HOLD_WRITE's, in their order) at their places, NULL where the kind takes none."""
    if isinstance(written, operations.Redemption):
        tid, pid, ref, sid, card, points, value, version, key, ledger, price, meta, payload = (
            written.arguments
        )
        return (REDEMPTION, tid, pid, ref, sid, card, points, value, version, key, ledger, price,
                None, meta, payload)  # fmt: skip
    tid, pid, ref, sid, card, points, version, key, ledger, expires_at, meta = written.arguments
    return (HOLD, tid, pid, ref, sid, card, points, None, version, key, ledger, None, expires_at,
            meta, None)  # fmt: skip


def _columns(rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Rows of arguments as one array per column."""
    return [list(column) for column in zip(*rows, strict=True)]
