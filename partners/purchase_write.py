"""A purchase written in one statement: the single one, and the plain ones written set-based.

`purchase_written_at_once` writes every single purchase by one call of
`queries.PURCHASE_WRITE`, and a referral reward after it when one may be due
(`purchase_referral`). `PlainPurchase` is a
purchase of partner-paid points only, assessed from its row of `PURCHASE_CONTEXT_MANY`: what
`purchase_many` hands to `PURCHASE_WRITE_MANY` with others, and `finish_plain` answers each one
it wrote as `purchase_written_at_once` answers.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from contracts.errors import DomainError
from contracts.partners import PurchaseRequest, PurchaseResult
from infra import outbox
from infra.db import Conn
from partners import earning, purchase_referral, queries
from partners._common import (
    Pricing,
    entry_of,
    event_payload_of,
    fresh,
    known,
    ledger_call,
    ledger_fetchrow,
    ledger_key,
    metadata_json,
    summary,
)
from partners.errors import PartnerRefConflict
from partners.purchase_context import PurchaseContext, purchase_context_of
from partners.purchase_terms import (
    NETWORK_PAID_REASON,
    PURCHASE_RECORDED,
    UPPER_TIER_NAMES,
    UPPER_TIERS_POINTS_MIN,
    UPPER_TIERS_SPEND_MIN,
    network_paid_metadata,
    purchase_metadata,
)
from shoppers import service as shoppers
from shoppers import tiers


async def purchase_written_at_once(
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
    """Every purchase's writes in one statement (`queries.PURCHASE_WRITE`), checked in the
    order they have always had: the earn (its errors, then a replay), the network-paid entry,
    the record (a ref taken concurrently). The statement also ensures and locks the tier row
    when the qualification reaches a tier above the base one; when the tier goes up, the
    change and then the event follow as separate statements. When a referral may pay
    (`ctx.referral_may_pay`), the event is held back: the reward follows the statement
    (`purchase_referral`), then the tier change and the event, with the reward's points."""
    holder, pricing = ctx.holder, ctx.pricing
    transaction_id = uuid.uuid4()
    event = None if ctx.referral_may_pay else _event_payload(holder, req, transaction_id, items)
    row = await _written(
        conn, partner_id, req, ctx, basket, items, idempotency_key, transaction_id, event, now
    )
    balance = _checked(row, req)
    assert event is not None or not row["event_recorded"], "a held-back event is not written"
    if ctx.referral_may_pay:
        rewarded = await purchase_referral.reward_after_write(
            conn,
            transaction_id=transaction_id,
            shopper_id=holder.shopper_id,
            amount_minor=req.amount_minor,
            pricing=pricing,
            expires_at=ctx.expires_at,
            items=items,
        )
        if rewarded is not None:
            items, balance = rewarded.items, rewarded.balance
    if not row["event_recorded"] and row["tier"] is not None:
        # tier.changed (when the tier goes up), then purchase.recorded
        qualification = tiers.qualification_of(row)
        await tiers.upgrade_locked(conn, holder.shopper_id, row["tier"], qualification, now=now)
    if balance is None:
        balance = (await summary(conn, holder.shopper_id)).balance
    if not row["event_recorded"]:
        await outbox.record(
            conn,
            PURCHASE_RECORDED,
            partner_id=partner_id,
            shopper_id=holder.shopper_id,
            payload=_event_payload(holder, req, transaction_id, items),
        )
    return PurchaseResult(
        transaction_id=str(transaction_id),
        points_earned=sum(item.points for item in items),
        balance=balance,
        breakdown=[item.contract() for item in items],
    )


def _event_payload(
    holder: shoppers.CardHolder,
    req: PurchaseRequest,
    transaction_id: uuid.UUID,
    items: list[earning.Item],
) -> dict[str, Any]:
    return event_payload_of(
        holder.shopper_id,
        str(transaction_id),
        req.partner_ref,
        sum(item.points for item in items),
        amount_minor=req.amount_minor,
    )


async def _written(
    conn: Conn,
    partner_id: int,
    req: PurchaseRequest,
    ctx: PurchaseContext,
    basket: earning.Basket,
    items: list[earning.Item],
    idempotency_key: str,
    transaction_id: uuid.UUID,
    event: dict[str, Any] | None,
    now: datetime,
) -> asyncpg.Record:
    """`queries.PURCHASE_WRITE`, timed as the ledger call it makes first; `event` None holds
    the event back (the statement then stops after the tier row)."""
    holder, pricing = ctx.holder, ctx.pricing
    partner_points = sum(item.points for item in items if item.paid_by == "partner")
    network_points = sum(item.points for item in items if item.paid_by == "network")
    timing = (
        ledger_call("earn", req.partner_ref)
        if partner_points > 0
        else ledger_call("goodwill", req.partner_ref)
        if network_points > 0
        else contextlib.nullcontext()
    )
    with timing:
        row = await ledger_fetchrow(
            conn,
            queries.PURCHASE_WRITE,
            transaction_id,
            partner_id,
            req.partner_ref,
            holder.shopper_id,
            holder.card_number,
            req.amount_minor,
            pricing.version,
            idempotency_key,
            pricing.issue_price_micros,
            ctx.expires_at,
            ledger_key(partner_id, req.partner_ref),
            partner_points,
            metadata_json(purchase_metadata(req)),
            ledger_key(partner_id, req.partner_ref, part="network"),
            network_points,
            metadata_json(
                {**network_paid_metadata(partner_id, req), "reason": NETWORK_PAID_REASON}
            ),
            now,
            *earning.stored_columns(basket, items),
            UPPER_TIER_NAMES,
            UPPER_TIERS_POINTS_MIN,
            UPPER_TIERS_SPEND_MIN,
            None if event is None else outbox.payload_text(PURCHASE_RECORDED, event),
        )
    return row


def _checked(row: asyncpg.Record, req: PurchaseRequest) -> int | None:
    """The statement's outcomes in their order: an earn replayed, then a ref taken
    concurrently (both partner_ref_conflict, which rolls everything back); the wallet balance
    after the last entry, None when there was none."""
    balance: int | None = None
    for raw in (row["earn"], row["network"]):
        if raw is not None:
            entry = entry_of(raw)
            fresh(entry, req.partner_ref)
            balance = known(entry.balance_after)
    if not row["recorded"]:  # a concurrent request with the same ref committed first
        raise PartnerRefConflict(req.partner_ref)
    return balance


@dataclass(frozen=True)
class PlainPurchase:
    """A purchase that needs partner-paid points only (base and tier bonus: no campaign bonus,
    no network-paid points, no referral reward), assessed from its read: what
    `partners.purchase_many` writes set-based with others, the same rows as
    `purchase_written_at_once` would write for it."""

    req: PurchaseRequest
    shopper_id: int
    pricing: Pricing
    expires_at: datetime
    items: tuple[earning.Item, ...]
    lines: tuple[tuple[str, int], ...]
    transaction_id: uuid.UUID

    @property
    def points(self) -> int:
        return sum(item.points for item in self.items)

    def earn_metadata_json(self) -> str:
        return metadata_json(purchase_metadata(self.req))

    def event_payload(self) -> dict[str, Any]:
        return event_payload_of(
            self.shopper_id,
            str(self.transaction_id),
            self.req.partner_ref,
            self.points,
            amount_minor=self.req.amount_minor,
        )

    def event_payload_text(self) -> str:
        return outbox.payload_text(PURCHASE_RECORDED, self.event_payload())

    def result(self, balance: int) -> PurchaseResult:
        return PurchaseResult(
            transaction_id=str(self.transaction_id),
            points_earned=self.points,
            balance=balance,
            breakdown=[item.contract() for item in self.items],
        )


def plain_purchase(
    row: asyncpg.Record, partner_id: int, req: PurchaseRequest, *, now: datetime
) -> PlainPurchase | None:
    """The purchase as a `PlainPurchase` from its row of `queries.PURCHASE_CONTEXT_MANY`, or
    None when it is not one: refused by its read (`purchase` raises the same error when it
    runs), a referral that may pay, a campaign bonus, or no points at all."""
    try:
        ctx = purchase_context_of(row, req, now=now)
        basket = earning.basket_of(req.amount_minor, req.lines)
    except DomainError:
        return None
    if ctx.referral_may_pay:
        return None
    assessment = earning.assess_read(
        partner_id, ctx.pricing, basket, ctx.rules, ctx.running, ctx.tier, ctx.facts, ctx.membership
    )
    if assessment.bonuses:
        return None  # awarded under the campaign's lock, one purchase at a time
    if assessment.membership_bonus > 0:
        return None  # network-paid points: the single path's network entry
    items = tuple(assessment.fixed_items())
    assert all(item.paid_by == "partner" for item in items), items
    if sum(item.points for item in items) <= 0:
        return None
    return PlainPurchase(
        req=req,
        shopper_id=ctx.holder.shopper_id,
        pricing=ctx.pricing,
        expires_at=ctx.expires_at,
        items=items,
        lines=basket.lines,
        transaction_id=uuid.uuid4(),
    )


async def finish_plain(
    conn: Conn,
    partner_id: int,
    plain: PlainPurchase,
    written: asyncpg.Record,
    *,
    now: datetime,
) -> PurchaseResult:
    """What `purchase_written_at_once` does after its statement, for an item written by
    `partner_purchase_write_many`: when the tier goes up, tier.changed then the event."""
    if not written["event_recorded"]:
        qualification = tiers.qualification_of(written)
        await tiers.upgrade_locked(conn, plain.shopper_id, written["tier"], qualification, now=now)
        await outbox.record(
            conn,
            PURCHASE_RECORDED,
            partner_id=partner_id,
            shopper_id=plain.shopper_id,
            payload=plain.event_payload(),
        )
    return plain.result(known(written["balance_after"]))
