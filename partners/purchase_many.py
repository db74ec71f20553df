"""Many plain purchases written set-based: a batch's items, or a group commit's purchases.

The caller hands over the purchases it would post one by one (`Candidate`s) before posting any.
One statement reads every purchase's context (`queries.PURCHASE_CONTEXT_MANY`: the single
purchase's read, per purchase). The ones that need partner-paid points only
(`purchase_write.plain_purchase`: no campaign bonus, no referral reward) are written together by
one call of `partner_purchase_write_many` (migration 0093), which writes the rows the single
path would write for each, at most one purchase per shopper per call: a shopper's next one
goes in the next round, after a fresh read. Everything else, and any purchase that function
leaves unwritten, the caller posts one by one through `purchase.purchase`, after these, and
it answers as it always did.

The first call also locks the wallets of every shopper the candidates name, in shopper id
order, so that concurrent callers sharing shoppers take them in one order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from contracts.partners import MAX_BATCH_ITEMS, PurchaseRequest, PurchaseResult
from infra.db import Conn
from partners import campaigns, queries
from partners._common import ledger_key
from partners.purchase_terms import UPPER_TIER_NAMES, UPPER_TIERS_POINTS_MIN, UPPER_TIERS_SPEND_MIN
from partners.purchase_write import PlainPurchase, finish_plain, plain_purchase
from partners.telemetry import timed

# What the write answers (its `refused` column, migration 0096) when it rolled itself back:
# nothing of the call stays, and its purchases go the single way. A neighbour's locks (another
# group or file taking wallets in another order) ...
LOST_TO_A_NEIGHBOUR = frozenset({"40P01", "40001"})  # deadlock, serialization failure
# ... or a partner_ref recorded concurrently since the read.
REF_RECORDED_CONCURRENTLY = "CLB01"
ROUNDS_MAX = MAX_BATCH_ITEMS  # a round writes at least one purchase of every shopper left


@dataclass(frozen=True)
class Candidate:
    """A purchase the caller would post by `purchase.purchase(conn, partner_id, req,
    idempotency_key=idempotency_key)`; `handle` names it in the answer."""

    handle: int
    partner_id: int
    req: PurchaseRequest
    idempotency_key: str


@dataclass(frozen=True)
class _Plain:
    candidate: Candidate
    plain: PlainPurchase


async def post_plain(conn: Conn, candidates: Sequence[Candidate]) -> dict[int, PurchaseResult]:
    """Write the plain purchases among `candidates` (in the order the caller posts them)
    set-based; answer each one written by its handle. The caller posts the others one by one,
    after these. Once one of a shopper's purchases is not written here, none of its later
    ones is: they all go one by one, in order."""
    if not candidates:
        return {}
    assert conn.is_in_transaction(), "the purchases' writes and locks belong to one transaction"
    assert len({c.handle for c in candidates}) == len(candidates), "handles are unique"
    now = datetime.now(UTC)
    rows = await _read(conn, candidates, now)
    # Each shopper's purchases in order; a row of None: the single path's (a partner_ref used
    # twice among the candidates), which stalls the shopper when its turn comes.
    queues: dict[int, list[tuple[Candidate, asyncpg.Record | None]]] = {}
    refs: set[tuple[int, str]] = set()
    for candidate, row in zip(candidates, rows, strict=True):
        if row["shopper_id"] is None:
            continue  # no such card: refused by its read in the single path
        ref = (candidate.partner_id, candidate.req.partner_ref)
        queues.setdefault(row["shopper_id"], []).append((candidate, None if ref in refs else row))
        refs.add(ref)
    if not queues:
        return {}  # no card of these purchases is known: nothing to lock, nothing plain
    lock_shopper_ids = sorted(queues)
    results: dict[int, PurchaseResult] = {}
    for round_number in range(ROUNDS_MAX):
        this_round = [queue[round_number] for queue in queues.values() if round_number < len(queue)]
        if not this_round:
            break
        if round_number > 0:  # reread: the shopper's previous purchase is written now
            fresh = iter(await _read(conn, [c for c, row in this_round if row is not None], now))
            this_round = [(c, None if row is None else next(fresh)) for c, row in this_round]
        written = await _write_round(
            conn, this_round, lock_shopper_ids if round_number == 0 else [], now
        )
        results.update(written)
        for queue in queues.values():
            if round_number < len(queue) and queue[round_number][0].handle not in written:
                del queue[round_number + 1 :]  # stalled: its later purchases go one by one
    return results


async def _read(conn: Conn, candidates: Sequence[Candidate], now: datetime) -> list[asyncpg.Record]:
    rows = await conn.fetch(
        queries.PURCHASE_CONTEXT_MANY,
        [c.partner_id for c in candidates],
        [c.req.card_number for c in candidates],
        [c.req.partner_ref for c in candidates],
        now,
        campaigns.CAMPAIGNS_PER_PURCHASE_MAX,
    )
    assert [row["n"] for row in rows] == list(range(1, len(candidates) + 1)), "one row each"
    return rows


async def _write_round(
    conn: Conn,
    this_round: list[tuple[Candidate, asyncpg.Record | None]],
    lock_shopper_ids: list[int],
    now: datetime,
) -> dict[int, PurchaseResult]:
    """One round: at most one purchase per shopper."""
    plains: list[_Plain] = []
    for candidate, row in this_round:
        if row is None:
            continue
        plain = plain_purchase(row, candidate.partner_id, candidate.req, now=now)
        if plain is not None:
            plains.append(_Plain(candidate, plain))
    with timed("purchase_many"):
        written = await _write(conn, plains, lock_shopper_ids, now)
    results: dict[int, PurchaseResult] = {}
    for row in written:
        if row["written"]:
            p = plains[row["n"] - 1]
            results[p.candidate.handle] = await finish_plain(
                conn, p.candidate.partner_id, p.plain, row, now=now
            )
    return results


async def _write(
    conn: Conn, plains: list[_Plain], lock_shopper_ids: list[int], now: datetime
) -> list[asyncpg.Record]:
    if not plains and not lock_shopper_ids:
        return []
    written = await conn.fetch(
        queries.PURCHASE_WRITE_MANY, *_arguments(plains, lock_shopper_ids, now)
    )
    refused = {row["refused"] for row in written} - {None}
    if not refused:
        assert len(written) == len(plains), "one row per purchase"
        return written
    assert len(written) == 1, written  # the refusal row alone
    if refused <= LOST_TO_A_NEIGHBOUR:
        return []
    assert refused == {REF_RECORDED_CONCURRENTLY}, refused
    # The rollback released the wallet locks: take them again, in the same order.
    lock_only = _arguments([], lock_shopper_ids, now)
    locked = await conn.fetch(queries.PURCHASE_WRITE_MANY, *lock_only)
    assert locked == [], locked
    return []


def _arguments(plains: list[_Plain], lock_shopper_ids: list[int], now: datetime) -> list[Any]:
    """PURCHASE_WRITE_MANY's arguments, in order."""
    line_items: list[int] = []
    line_categories: list[str] = []
    line_amounts: list[int] = []
    breakdown_items: list[int] = []
    kinds: list[str] = []
    points: list[int] = []
    campaign_ids: list[int | None] = []
    payers: list[str] = []
    for n, p in enumerate(plains, start=1):
        for category, amount in p.plain.lines:
            line_items.append(n)
            line_categories.append(category)
            line_amounts.append(amount)
        for item in p.plain.items:
            breakdown_items.append(n)
            kinds.append(item.kind)
            points.append(item.points)
            campaign_ids.append(item.campaign_id)
            payers.append(item.paid_by)
    return [
        now,
        lock_shopper_ids,
        [p.plain.transaction_id for p in plains],
        [p.candidate.partner_id for p in plains],
        [p.candidate.req.partner_ref for p in plains],
        [p.plain.shopper_id for p in plains],
        [p.candidate.req.card_number for p in plains],
        [p.candidate.req.amount_minor for p in plains],
        [p.plain.pricing.version for p in plains],
        [p.plain.pricing.issue_price_micros for p in plains],
        [p.plain.expires_at for p in plains],
        [p.candidate.idempotency_key for p in plains],
        [ledger_key(p.candidate.partner_id, p.candidate.req.partner_ref) for p in plains],
        [p.plain.points for p in plains],
        [p.plain.earn_metadata_json() for p in plains],
        [p.plain.event_payload_text() for p in plains],
        line_items,
        line_categories,
        line_amounts,
        breakdown_items,
        kinds,
        points,
        campaign_ids,
        payers,
        UPPER_TIER_NAMES,
        UPPER_TIERS_POINTS_MIN,
        UPPER_TIERS_SPEND_MIN,
    ]
