"""Refunds of purchases, redemptions and captured holds: the rule and its ledger calls.

`partners.operations` is the door: routes and tests call `operations.refund`, which is this
module's `refund`. It runs in the caller's transaction like every partner operation.
"""

from __future__ import annotations

import uuid

import asyncpg

from contracts.partners import RefundRequest, RefundResult
from infra.db import Conn
from ledger import service as ledger
from partners import campaign_returns, queries
from partners._common import (
    atomic,
    fresh,
    known,
    ledger_call,
    ledger_key,
    record,
    ref_free,
    summary,
)
from partners.errors import NotFound, RefundExceedsOriginal, RefundNotApplicable
from shoppers import service as shoppers


@atomic
async def refund(
    conn: Conn, partner_id: int, req: RefundRequest, *, idempotency_key: str
) -> RefundResult:
    """Refund (part of) a purchase or a redemption, never more than what is left of it.
    A purchase's network campaign points (paid by network:marketing) go back with the same
    cumulative share, floored; its referral bonus stays (see `_network_refund_share`)."""
    if req.amount_minor is not None and req.points is not None:
        raise RefundNotApplicable("give amount_minor or points, not both")
    await ref_free(conn, partner_id, req.partner_ref)
    original, done = await _original_and_refunded_so_far(conn, partner_id, req)
    points, amount_minor = _refund_share(original, done, req)
    network_points = _network_refund_share(original, done, points, amount_minor)
    # Budgets first: campaign locks come before the wallet's, as on the purchase path.
    budget_returns = await _return_campaign_budgets(conn, original, done, points, network_points)
    entry = await _refund_partner_points(conn, partner_id, req, original, points)
    network_entry = await _refund_network_points(conn, partner_id, req, original, network_points)
    holder = shoppers.CardHolder(original["shopper_id"], original["card_number"])
    transaction_id = await record(
        conn,
        partner_id=partner_id,
        partner_ref=req.partner_ref,
        kind="refund",
        status="completed",
        holder=holder,
        points=points,
        amount_minor=amount_minor,
        value_minor=_refund_value_minor(original, points),
        pricing_version=original["pricing_version"],
        original_id=original["id"],
        ledger_entry_id=None if entry is None else entry.entry_id,
        idempotency_key=idempotency_key,
        network_points=network_points,
        network_entry_id=None if network_entry is None else network_entry.entry_id,
    )
    await campaign_returns.record(
        conn, uuid.UUID(transaction_id), original["shopper_id"], budget_returns
    )
    return RefundResult(
        transaction_id=transaction_id,
        original_transaction_id=str(original["id"]),
        points_refunded=points,
        amount_minor=amount_minor,
        balance=await _balance_after(conn, holder.shopper_id, network_entry or entry),
        network_points_refunded=network_points,
    )


# ---- steps -----------------------------------------------------------------------------------


async def _original_and_refunded_so_far(
    conn: Conn, partner_id: int, req: RefundRequest
) -> tuple[asyncpg.Record, asyncpg.Record]:
    # Locking the original serializes concurrent refunds of it: the sums below stay true.
    original = await conn.fetchrow(
        queries.TRANSACTION_BY_REF_FOR_UPDATE, partner_id, req.original_partner_ref
    )
    if original is None:
        raise NotFound("original transaction")
    done = await conn.fetchrow(queries.REFUNDED_SO_FAR, original["id"])
    assert done is not None, "an aggregate always returns a row"
    return original, done


async def _return_campaign_budgets(
    conn: Conn, original: asyncpg.Record, done: asyncpg.Record, points: int, network_points: int
) -> list[campaign_returns.Return]:
    """Give back the campaign budget of the campaign points this refund takes back."""
    if original["kind"] != "purchase" or (points <= 0 and network_points <= 0):
        return []
    items = await campaign_returns.items_of(conn, original["shopper_id"], original["id"])
    returns = campaign_returns.due(
        items,
        purchase_points=int(original["points"]),
        partner_before=int(done["points"]),
        partner_after=int(done["points"]) + points,
        network_before=int(done["network_points"]),
        network_after=int(done["network_points"]) + network_points,
    )
    await campaign_returns.apply(conn, original["shopper_id"], returns)
    return returns


async def _refund_partner_points(
    conn: Conn, partner_id: int, req: RefundRequest, original: asyncpg.Record, points: int
) -> ledger.EntryResult | None:
    """Take back the partner's share: a refund of the earn entry, or of the burn entry."""
    if points <= 0:
        return None
    operation = "refund_earn" if original["kind"] == "purchase" else "refund_burn"
    refund_call = ledger.refund_earn if original["kind"] == "purchase" else ledger.refund_burn
    with ledger_call(operation, req.partner_ref):
        entry = await refund_call(
            conn,
            idempotency_key=ledger_key(partner_id, req.partner_ref),
            original_entry_id=original["ledger_entry_id"],
            points=points,
            metadata={"partner_ref": req.partner_ref},
        )
    fresh(entry, req.partner_ref)
    return entry


async def _refund_network_points(
    conn: Conn, partner_id: int, req: RefundRequest, original: asyncpg.Record, network_points: int
) -> ledger.EntryResult | None:
    if network_points <= 0:
        return None
    # The purchase's network campaign points go back to network:marketing, through a
    # refund of its marketing-paid entry (spent points become points debt, as for the
    # partner's share). Its own ledger key makes a retry a replay, never a second debit.
    with ledger_call("refund_earn", req.partner_ref):
        network_entry = await ledger.refund_earn(
            conn,
            idempotency_key=ledger_key(partner_id, req.partner_ref, part="network"),
            original_entry_id=original["network_entry_id"],
            points=network_points,
            metadata={"partner_ref": req.partner_ref, "paid_by": "network"},
        )
    fresh(network_entry, req.partner_ref)
    return network_entry


def _refund_value_minor(original: asyncpg.Record, points: int) -> int | None:
    """A redemption's refund is worth its share of the redemption's value; a purchase's, none."""
    if original["kind"] == "purchase" or original["value_minor"] is None:
        return None
    captured = _refundable_points(original)
    if not captured:
        return 0
    value_minor: int = original["value_minor"] * points // captured
    return value_minor


async def _balance_after(conn: Conn, shopper_id: int, last_entry: ledger.EntryResult | None) -> int:
    if last_entry is not None:
        return known(last_entry.balance_after)
    return (await summary(conn, shopper_id)).balance


# ---- rules -----------------------------------------------------------------------------------


def _refundable_points(original: asyncpg.Record) -> int:
    if original["kind"] == "hold":
        return int(original["points_captured"])
    return int(original["points"])


def _refund_share(
    original: asyncpg.Record, done: asyncpg.Record, req: RefundRequest
) -> tuple[int, int | None]:
    """(points, amount_minor) of this refund; raises when it exceeds what is left."""
    kind = original["kind"]
    if kind == "refund" or (kind == "hold" and original["status"] != "captured"):
        raise RefundNotApplicable("only purchases, redemptions and captured holds are refunded")
    total_points = _refundable_points(original)
    points_left = total_points - done["points"]
    if kind != "purchase":
        if req.amount_minor is not None:
            raise RefundNotApplicable("a redemption is refunded in points")
        points = points_left if req.points is None else req.points
        if points > points_left or points_left == 0:
            raise RefundExceedsOriginal(remaining=points_left, unit="points")
        return points, None
    if req.points is not None:
        if req.points > points_left:
            raise RefundExceedsOriginal(remaining=points_left, unit="points")
        return req.points, None
    amount_left = original["amount_minor"] - done["amount_minor"]
    amount = amount_left if req.amount_minor is None else req.amount_minor
    if amount > amount_left or amount_left == 0:
        raise RefundExceedsOriginal(remaining=amount_left, unit="amount_minor")
    # Proportional on the cumulative amount, so partial refunds add up to the whole exactly.
    points_due = total_points * (done["amount_minor"] + amount) // original["amount_minor"]
    points = min(points_left, max(0, points_due - done["points"]))
    return points, amount


def _network_refund_share(
    original: asyncpg.Record, done: asyncpg.Record, points: int, amount_minor: int | None
) -> int:
    """The purchase's network campaign points this refund takes back: the same cumulative
    share of them as of the purchase (by amount, or by the partner's points when refunded in
    points), floored, so partial refunds add up to all of them exactly on the whole refund.
    The referral bonus is never taken back: it rewards bringing the friend, not the basket
    (and the referrer's half was earned by someone who is not refunding anything)."""
    network_total = int(original["network_points"])
    if original["kind"] != "purchase" or network_total == 0:
        return 0
    if amount_minor is not None:
        refunded, whole = done["amount_minor"] + amount_minor, original["amount_minor"]
    else:
        refunded, whole = done["points"] + points, original["points"]
    if whole <= 0:
        return 0
    taken = int(done["network_points"])
    due = network_total * min(int(refunded), int(whole)) // int(whole)
    return max(0, min(network_total - taken, due - taken))
