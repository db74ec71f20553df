"""A purchase written as separate statements: the path of a purchase that may pay a referral.

The referral reward comes between the purchase's record and its lines, so these writes stay
separate statements: the earn entries, the record, the reward, lines + breakdown +
qualification, the tier, the event. Every other purchase takes `purchase_write`, which writes
the same rows (without a reward) in one statement.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from contracts.partners import PurchaseRequest, PurchaseResult
from infra import outbox
from infra.db import Conn
from ledger import service as ledger
from partners import earning
from partners._common import (
    Pricing,
    event_payload_of,
    fresh,
    known,
    ledger_call,
    ledger_key,
    record,
    summary,
)
from partners.purchase_context import PurchaseContext
from partners.purchase_terms import NETWORK_PAID_REASON, network_paid_metadata, purchase_metadata
from shoppers import referrals, tiers
from shoppers import service as shoppers


async def purchase_in_steps(
    conn: Conn,
    partner_id: int,
    req: PurchaseRequest,
    ctx: PurchaseContext,
    basket: earning.Basket,
    items: list[earning.Item],
    idempotency_key: str,
    *,
    now: datetime,
) -> PurchaseResult:
    """The writes as separate statements: the earn entries, the record, the referral reward,
    lines + breakdown + qualification, the tier, the event."""
    holder, pricing = ctx.holder, ctx.pricing
    expires_at = ctx.expires_at
    credit = await _credit_earned(
        conn, partner_id, req, holder.shopper_id, pricing, items, expires_at
    )
    transaction_id = uuid.uuid4()
    await _record_purchase(
        conn, transaction_id, partner_id, req, holder, pricing, credit, idempotency_key
    )
    reward = await _referral_reward(
        conn, holder.shopper_id, req, transaction_id, pricing, expires_at
    )
    if reward is not None:
        items.append(earning.Item("referral", reward.friend_points, "network"))
    qualification = await earning.store(
        conn,
        transaction_id=transaction_id,
        shopper_id=holder.shopper_id,
        partner_id=partner_id,
        basket=basket,
        items=items,
        now=now,
    )
    await tiers.upgrade_if_qualified(conn, holder.shopper_id, qualification, now=now)
    balance = credit.balance if reward is None else reward.friend_balance_after
    if balance is None:
        balance = (await summary(conn, holder.shopper_id)).balance
    return await _purchase_recorded(conn, transaction_id, partner_id, req, holder, items, balance)


@dataclass(frozen=True)
class _Credit:
    """What a purchase put in the ledger: the partner-paid and the marketing-paid points, their
    entries (None when nothing was due) and the wallet balance after the last of them."""

    partner_points: int
    network_points: int
    entry_id: int | None
    network_entry_id: int | None
    balance: int | None


async def _credit_earned(
    conn: Conn,
    partner_id: int,
    req: PurchaseRequest,
    shopper_id: int,
    pricing: Pricing,
    items: list[earning.Item],
    expires_at: datetime,
) -> _Credit:
    """Credit the partner-paid items in the partner's earn entry, then the network-paid ones
    in a marketing-paid entry."""
    partner_points = sum(item.points for item in items if item.paid_by == "partner")
    network_points = sum(item.points for item in items if item.paid_by == "network")
    entry_id: int | None = None
    network_entry_id: int | None = None
    balance: int | None = None
    if partner_points > 0:
        entry = await _earn(conn, partner_id, req, shopper_id, partner_points, pricing, expires_at)
        entry_id, balance = entry.entry_id, known(entry.balance_after)
    if network_points > 0:
        entry = await _earn_network_paid(
            conn, partner_id, req, shopper_id, network_points, pricing, expires_at
        )
        network_entry_id, balance = entry.entry_id, known(entry.balance_after)
    return _Credit(partner_points, network_points, entry_id, network_entry_id, balance)


async def _earn(
    conn: Conn,
    partner_id: int,
    req: PurchaseRequest,
    shopper_id: int,
    points: int,
    pricing: Pricing,
    expires_at: datetime,
) -> ledger.EntryResult:
    with ledger_call("earn", req.partner_ref):
        entry = await ledger.earn(
            conn,
            idempotency_key=ledger_key(partner_id, req.partner_ref),
            shopper_id=shopper_id,
            partner_id=partner_id,
            points=points,
            issue_price_micros=pricing.issue_price_micros,
            expires_at=expires_at,
            metadata=purchase_metadata(req),
        )
    fresh(entry, req.partner_ref)
    return entry


async def _earn_network_paid(
    conn: Conn,
    partner_id: int,
    req: PurchaseRequest,
    shopper_id: int,
    points: int,
    pricing: Pricing,
    expires_at: datetime,
) -> ledger.EntryResult:
    # Network campaigns: marketing pays, valued at this partner's issue price.
    with ledger_call("goodwill", req.partner_ref):
        entry = await ledger.goodwill(
            conn,
            idempotency_key=ledger_key(partner_id, req.partner_ref, part="network"),
            shopper_id=shopper_id,
            partner_id=None,
            points=points,
            issue_price_micros=pricing.issue_price_micros,
            expires_at=expires_at,
            reason=NETWORK_PAID_REASON,
            metadata=network_paid_metadata(partner_id, req),
        )
    fresh(entry, req.partner_ref)
    return entry


async def _referral_reward(
    conn: Conn,
    shopper_id: int,
    req: PurchaseRequest,
    transaction_id: uuid.UUID,
    pricing: Pricing,
    expires_at: datetime,
) -> referrals.Reward | None:
    """The referral bonus, if this is the friend's first qualifying purchase."""
    return await referrals.reward_qualifying_purchase(
        conn,
        shopper_id=shopper_id,
        amount_minor=req.amount_minor,
        transaction_id=transaction_id,
        issue_price_micros=pricing.issue_price_micros,
        expires_at=expires_at,
    )


async def _record_purchase(
    conn: Conn,
    transaction_id: uuid.UUID,
    partner_id: int,
    req: PurchaseRequest,
    holder: shoppers.CardHolder,
    pricing: Pricing,
    credit: _Credit,
    idempotency_key: str,
) -> None:
    await record(
        conn,
        transaction_id=transaction_id,
        partner_id=partner_id,
        partner_ref=req.partner_ref,
        kind="purchase",
        status="completed",
        holder=holder,
        points=credit.partner_points,  # what the partner pays for, and what a refund may take back
        amount_minor=req.amount_minor,
        pricing_version=pricing.version,
        ledger_entry_id=credit.entry_id,
        idempotency_key=idempotency_key,
        network_points=credit.network_points,  # what a refund takes back from marketing's side
        network_entry_id=credit.network_entry_id,
    )


async def _purchase_recorded(
    conn: Conn,
    transaction_id: uuid.UUID,
    partner_id: int,
    req: PurchaseRequest,
    holder: shoppers.CardHolder,
    items: list[earning.Item],
    balance: int,
) -> PurchaseResult:
    """Record the `purchase.recorded` event and answer with the breakdown."""
    points_earned = sum(item.points for item in items)
    await _record_event(
        conn,
        "purchase.recorded",
        partner_id=partner_id,
        shopper_id=holder.shopper_id,
        transaction_id=str(transaction_id),
        partner_ref=req.partner_ref,
        points=points_earned,
        amount_minor=req.amount_minor,
    )
    return PurchaseResult(
        transaction_id=str(transaction_id),
        points_earned=points_earned,
        balance=balance,
        breakdown=[item.contract() for item in items],
    )


async def _record_event(
    conn: Conn,
    event_type: str,
    *,
    partner_id: int,
    shopper_id: int,
    transaction_id: str,
    partner_ref: str,
    points: int,
    **extra: int | None,
) -> None:
    """An operation's event, to its partner, in the operation's transaction: ids, reference
    and points only (no card number or personal data)."""
    await outbox.record(
        conn,
        event_type,
        partner_id=partner_id,
        shopper_id=shopper_id,
        payload=event_payload_of(shopper_id, transaction_id, partner_ref, points, **extra),
    )
