"""Many plain purchases of one partner, written set-based: the fast half of a batch.

`partners.batch` hands over the items it would post (each partner_ref's first use, not yet
recorded) before posting any. One statement reads every item's context
(`queries.PURCHASE_CONTEXT_MANY`, the single purchase's read per item). The items that need
partner-paid points only (`operations.plain_purchase`: no campaign bonus, no referral reward)
are written together by one call of `partner_purchase_write_many` (migration 0093), which
writes the rows the single path would write for each, at most one item per shopper per call
(a shopper's next item goes in the next round, after a fresh read). Everything else, and any item that function leaves unwritten, is posted by the
batch item by item through `operations.purchase`, as before, and answers as before.

The same call first locks the wallets of every shopper the items name, in shopper id order,
so that concurrent batches sharing shoppers cannot deadlock whichever half posts an item.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg

from contracts.partners import MAX_BATCH_ITEMS, PurchaseRequest, PurchaseResult
from infra.db import Conn
from partners import campaigns, queries
from partners._common import ledger_key
from partners.telemetry import timed

if TYPE_CHECKING:
    from partners.operations import PlainPurchase

SAVEPOINT_MANY = "SAVEPOINT purchase_many"
ROLLBACK_MANY = "ROLLBACK TO SAVEPOINT purchase_many; RELEASE SAVEPOINT purchase_many"
RELEASE_MANY = "RELEASE SAVEPOINT purchase_many"
# Raised by partner_purchase_write_many when a partner_ref was recorded concurrently since the
# read: nothing of the call stays, and the items go the single way.
REF_RECORDED_CONCURRENTLY = "CLB01"


async def post_plain(
    conn: Conn,
    partner_id: int,
    candidates: Sequence[tuple[int, PurchaseRequest]],
    *,
    idempotency_key: str,
) -> dict[int, PurchaseResult]:
    """Write the plain purchases among `candidates` (index, request; in the order the batch
    posts them) set-based; answer each one written by its index. The caller posts the others
    one by one, after these.

    A shopper's items go in rounds, the first of each shopper in the first round, its second
    in the second, each round reading again what the one before wrote. Once one of a shopper's
    items is not written here, none of its later ones is: they all go one by one, in order."""
    if not candidates:
        return {}
    assert conn.is_in_transaction(), "the items' writes and locks belong to the batch's call"
    now = datetime.now(UTC)
    rows = await _read(conn, partner_id, candidates, now)
    queues: dict[int, list[tuple[int, PurchaseRequest]]] = {}
    for candidate, row in zip(candidates, rows, strict=True):
        if row["shopper_id"] is not None:
            queues.setdefault(row["shopper_id"], []).append(candidate)
    if not queues:
        return {}  # no card of these items is known: nothing to lock, nothing plain
    lock_shopper_ids = sorted(queues)
    first_rows = {index: row for (index, _), row in zip(candidates, rows, strict=True)}
    results: dict[int, PurchaseResult] = {}
    for round_number in range(MAX_BATCH_ITEMS):
        batch = [queue[round_number] for queue in queues.values() if round_number < len(queue)]
        if not batch:
            break
        round_rows = (
            [first_rows[index] for index, _ in batch]
            if round_number == 0
            else await _read(conn, partner_id, batch, now)
        )
        written = await _write_round(
            conn,
            partner_id,
            list(zip(batch, round_rows, strict=True)),
            lock_shopper_ids if round_number == 0 else [],
            idempotency_key,
            now,
        )
        results.update(written)
        for queue in queues.values():
            if round_number < len(queue) and queue[round_number][0] not in written:
                del queue[round_number + 1 :]  # stalled: its later items go one by one
    return results


async def _read(
    conn: Conn,
    partner_id: int,
    candidates: Sequence[tuple[int, PurchaseRequest]],
    now: datetime,
) -> list[asyncpg.Record]:
    rows = await conn.fetch(
        queries.PURCHASE_CONTEXT_MANY,
        partner_id,
        [req.card_number for _, req in candidates],
        [req.partner_ref for _, req in candidates],
        now,
        campaigns.CAMPAIGNS_PER_PURCHASE_MAX,
    )
    assert [row["n"] for row in rows] == list(range(1, len(candidates) + 1)), "one row per item"
    return rows


async def _write_round(
    conn: Conn,
    partner_id: int,
    batch: list[tuple[tuple[int, PurchaseRequest], asyncpg.Record]],
    lock_shopper_ids: list[int],
    idempotency_key: str,
    now: datetime,
) -> dict[int, PurchaseResult]:
    """One round: at most one item per shopper."""
    # Late import: partners.operations imports partners.batch, which imports this module.
    from partners import operations

    plains: list[tuple[int, PlainPurchase]] = []
    for (index, req), row in batch:
        plain = operations.plain_purchase(row, partner_id, req, now=now)
        if plain is not None:
            plains.append((index, plain))
    with timed("purchase_many"):
        written = await _write(conn, partner_id, plains, lock_shopper_ids, idempotency_key, now)
    results: dict[int, PurchaseResult] = {}
    for row in written:
        if row["written"]:
            index, plain = plains[row["n"] - 1]
            results[index] = await operations.finish_plain(conn, partner_id, plain, row, now=now)
    return results


async def _write(
    conn: Conn,
    partner_id: int,
    plains: list[tuple[int, PlainPurchase]],
    lock_shopper_ids: list[int],
    idempotency_key: str,
    now: datetime,
) -> list[asyncpg.Record]:
    args = _arguments(partner_id, [plain for _, plain in plains], idempotency_key, now)
    await conn.execute(SAVEPOINT_MANY)
    try:
        written = await conn.fetch(queries.PURCHASE_WRITE_MANY, *args(lock_shopper_ids))
    except asyncpg.PostgresError as exc:
        if getattr(exc, "sqlstate", None) != REF_RECORDED_CONCURRENTLY:
            raise
        await conn.execute(ROLLBACK_MANY)
        # The rollback released the wallet locks: take them again, in the same order.
        locked = await conn.fetch(queries.PURCHASE_WRITE_MANY, *_lock_only(lock_shopper_ids))
        assert locked == [], locked
        return []
    await conn.execute(RELEASE_MANY)
    assert len(written) == len(plains), "one row per item"
    return written


class _Arguments:
    """PURCHASE_WRITE_MANY's arguments but the lock list, built once."""

    def __init__(self, head: list[Any], items: list[Any]) -> None:
        self.head = head
        self.items = items

    def __call__(self, lock_shopper_ids: list[int]) -> list[Any]:
        return [*self.head, lock_shopper_ids, *self.items]


def _arguments(
    partner_id: int, plains: list[PlainPurchase], idempotency_key: str, now: datetime
) -> _Arguments:
    from partners import operations  # late, as in post_plain

    pricing = {(plain.pricing, plain.expires_at) for plain in plains}
    assert len(pricing) <= 1, "one read: one pricing version and one expiry for every item"
    price, expires_at = next(iter(pricing)) if pricing else (None, None)
    line_items: list[int] = []
    line_categories: list[str] = []
    line_amounts: list[int] = []
    breakdown_items: list[int] = []
    kinds: list[str] = []
    points: list[int] = []
    campaign_ids: list[int | None] = []
    payers: list[str] = []
    for n, plain in enumerate(plains, start=1):
        for category, amount in plain.lines:
            line_items.append(n)
            line_categories.append(category)
            line_amounts.append(amount)
        for item in plain.items:
            breakdown_items.append(n)
            kinds.append(item.kind)
            points.append(item.points)
            campaign_ids.append(item.campaign_id)
            payers.append(item.paid_by)
    head = [
        partner_id,
        None if price is None else price.version,
        idempotency_key,
        None if price is None else price.issue_price_micros,
        expires_at,
        now,
    ]
    items = [
        [plain.transaction_id for plain in plains],
        [plain.req.partner_ref for plain in plains],
        [plain.shopper_id for plain in plains],
        [plain.req.card_number for plain in plains],
        [plain.req.amount_minor for plain in plains],
        [ledger_key(partner_id, plain.req.partner_ref) for plain in plains],
        [plain.points for plain in plains],
        [plain.earn_metadata_json() for plain in plains],
        [plain.event_payload_text() for plain in plains],
        line_items,
        line_categories,
        line_amounts,
        breakdown_items,
        kinds,
        points,
        campaign_ids,
        payers,
        operations.UPPER_TIER_NAMES,
        operations.UPPER_TIERS_POINTS_MIN,
        operations.UPPER_TIERS_SPEND_MIN,
    ]
    return _Arguments(head, items)


def _lock_only(lock_shopper_ids: list[int]) -> list[Any]:
    """Arguments that lock the wallets and write nothing."""
    empty: list[Any] = []
    return [None, None, None, None, None, None, lock_shopper_ids, *([empty] * 17), [], [], []]
