"""Purchase batches: a partner's end-of-day file from offline stores.

The whole call runs in the caller's transaction (the gateway's idempotency transaction). The
plain items (partner-paid points only) are written first, set-based (`purchase_many`, when
`set_based`); every other item, and any the set-based half leaves, is posted by itself in its
own SAVEPOINT around `purchase.purchase`, as below. The ledger operations open no
savepoint of their own and a domain error aborts the enclosing transaction, so without one
per item a single unknown card would fail every neighbour. A rolled-back savepoint leaves
nothing of its item (no entry, no lot, no record, no campaign award, no event).

Each item's `partner_ref` is its own idempotency scope in the ledger, exactly as for a
single purchase (`_common.ledger_key`): a batch item and a single purchase with the same ref
conflict. An item whose ref already names the same purchase (same card and amount), recorded
by an earlier call or an earlier item of this batch, answers `duplicate` with the original
transaction id and posts nothing, so re-uploading a file is safe. A ref recorded for anything
else (another card or amount, a redemption, a refund) is `rejected` with
`partner_ref_conflict`: answering `duplicate` there would hide a real mistake.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from contracts.errors import DomainError, ErrorCode
from contracts.partners import (
    MAX_BATCH_ITEMS,
    BatchItemError,
    BatchItemResult,
    PurchaseBatchRequest,
    PurchaseBatchResult,
    PurchaseRequest,
    PurchaseResult,
)
from infra.db import Conn
from partners import purchase_many
from partners._common import atomic
from partners.errors import PartnerRefConflict
from partners.purchase import purchase

# One savepoint per item, by statement rather than asyncpg's nested `conn.transaction()`, so
# it works however the caller opened its transaction (an asyncpg block or a plain BEGIN).
SAVEPOINT_ITEM = "SAVEPOINT batch_item"
ROLLBACK_ITEM = "ROLLBACK TO SAVEPOINT batch_item; RELEASE SAVEPOINT batch_item"  # one trip
RELEASE_ITEM = "RELEASE SAVEPOINT batch_item"
# A created item's savepoint is released together with the next item's, in one trip.
NEXT_ITEM = "RELEASE SAVEPOINT batch_item; SAVEPOINT batch_item"

# What a batch needs to tell a re-uploaded item from a conflicting one. (Kept beside its only
# caller; partners/queries.py is the room's SQL file and may take it over.)
RECORDED_BY_REFS = """
SELECT partner_ref, id, kind, card_number, amount_minor
FROM partner_transactions
WHERE partner_id = $1 AND partner_ref = ANY($2::text[])
"""


class BatchTooLarge(DomainError):
    code = ErrorCode.BATCH_TOO_LARGE

    def __init__(self, items: int) -> None:
        self.items = items
        super().__init__(
            f"a batch holds at most {MAX_BATCH_ITEMS} purchases, this one has {items}: "
            "split the file"
        )

    def details(self) -> dict[str, Any]:
        return {"items": self.items, "items_max": MAX_BATCH_ITEMS}


@atomic
async def purchase_batch(
    conn: Conn,
    partner_id: int,
    req: PurchaseBatchRequest,
    *,
    idempotency_key: str,
    set_based: bool,
) -> PurchaseBatchResult:
    """Post every item that can be posted; answer each item's outcome in request order.
    `set_based`: write the plain items together first (`purchase_many`); False posts every
    item one by one (the reference the set-based writes are compared with)."""
    if len(req.items) > MAX_BATCH_ITEMS:
        raise BatchTooLarge(len(req.items))
    assert conn.is_in_transaction(), "each item's savepoint needs the batch's transaction"
    recorded = {
        row["partner_ref"]: row
        for row in await conn.fetch(
            RECORDED_BY_REFS, partner_id, [item.partner_ref for item in req.items]
        )
    }
    answered: dict[int, BatchItemResult] = {}
    # The plain items first, set-based; the rest one by one below (see purchase_many).
    firsts = _first_uses(req.items)
    order = _lock_order(req.items, firsts)
    first_uses = [
        purchase_many.Candidate(index, partner_id, req.items[index], idempotency_key)
        for index in order[: len(firsts)]
        if req.items[index].partner_ref not in recorded
    ]
    created_many = await purchase_many.post_plain(conn, first_uses) if set_based else {}
    for index, created in created_many.items():
        answered[index] = _created(index, req.items[index], created)
    created_open = False  # the last created item's savepoint, not released yet
    for index in order:
        if index in answered:
            continue
        item = req.items[index]
        original = recorded.get(item.partner_ref)
        if original is not None:
            answered[index] = _already_recorded(index, item, original)
            continue
        await conn.execute(NEXT_ITEM if created_open else SAVEPOINT_ITEM)
        created_open = False
        try:
            created = await purchase(conn, partner_id, item, idempotency_key=idempotency_key)
        except DomainError as exc:
            # This item, and nothing else: the batch's transaction goes on without it.
            await conn.execute(ROLLBACK_ITEM)
            answered[index] = await _refused(conn, partner_id, index, item, exc, recorded)
            continue
        # Any other exception is a fault, not a refusal: it aborts the whole call (nothing is
        # stored, so the partner's retry with the same Idempotency-Key runs it again).
        created_open = True
        answered[index] = _created(index, item, created)
    if created_open:
        await conn.execute(RELEASE_ITEM)
    assert len(answered) == len(req.items), "every item gets exactly one answer"
    results = [answered[index] for index in range(len(req.items))]
    return PurchaseBatchResult(
        results=results,
        created=sum(result.status == "created" for result in results),
        rejected=sum(result.status == "rejected" for result in results),
        duplicate=sum(result.status == "duplicate" for result in results),
    )


def _created(index: int, item: PurchaseRequest, created: PurchaseResult) -> BatchItemResult:
    return BatchItemResult(
        index=index,
        partner_ref=item.partner_ref,
        status="created",
        transaction_id=created.transaction_id,
        points_earned=created.points_earned,
        breakdown=created.breakdown,
    )


def _lock_order(items: list[PurchaseRequest], firsts: list[int]) -> list[int]:
    """Item indexes by card number, file order within a card. Every item locks its shopper's
    wallet (and tier) until the batch commits; concurrent batches that share shoppers (cards
    are network-wide) would deadlock if each took them in its own file order, so all take
    them in one order. A shopper's own items keep their file order (tier progress follows
    the file). An item repeating an earlier item's `partner_ref` goes last, so the file's
    first use of a ref is the one posted (`firsts`: `_first_uses(items)`). Answers are
    returned in request order."""
    repeats = sorted(set(range(len(items))) - set(firsts))
    return sorted(firsts, key=lambda index: (items[index].card_number, index)) + repeats


def _first_uses(items: list[PurchaseRequest]) -> list[int]:
    """Indexes of the items that use their `partner_ref` first in the file, in file order."""
    first_of_ref: dict[str, int] = {}
    for index, item in enumerate(items):
        first_of_ref.setdefault(item.partner_ref, index)
    return sorted(first_of_ref.values())


async def _refused(
    conn: Conn,
    partner_id: int,
    index: int,
    item: PurchaseRequest,
    exc: DomainError,
    recorded: dict[str, asyncpg.Record],
) -> BatchItemResult:
    if isinstance(exc, PartnerRefConflict):
        # Committed by a concurrent call after the look-up above, or by an earlier item of
        # this batch: the item's savepoint is gone, so the record is readable again.
        row = await conn.fetchrow(RECORDED_BY_REFS, partner_id, [item.partner_ref])
        if row is not None:
            recorded[item.partner_ref] = row
            return _already_recorded(index, item, row)
    return _rejected(index, item, exc)


def _already_recorded(index: int, item: PurchaseRequest, row: asyncpg.Record) -> BatchItemResult:
    same_purchase = (
        row["kind"] == "purchase"
        and row["card_number"] == item.card_number
        and row["amount_minor"] == item.amount_minor
    )
    if not same_purchase:
        return _rejected(index, item, PartnerRefConflict(item.partner_ref))
    return BatchItemResult(
        index=index, partner_ref=item.partner_ref, status="duplicate", transaction_id=str(row["id"])
    )


def _rejected(index: int, item: PurchaseRequest, exc: DomainError) -> BatchItemResult:
    return BatchItemResult(
        index=index,
        partner_ref=item.partner_ref,
        status="rejected",
        error=BatchItemError(code=str(exc.code), detail=str(exc)),
    )
