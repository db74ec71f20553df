"""The purchase: what a partner's till calls to credit a shopper, and its quote.

`purchase` reads its context (`purchase_context`), assesses and awards the points
(`earning`), then writes in one statement (`purchase_write`), followed by the referral reward
when one may be due (`purchase_referral`). `quote` is the same assessment, written nowhere.
(Many purchases at once: `purchase_many`, called by `batch` and the group commit.)
"""

from __future__ import annotations

from datetime import UTC, datetime

from contracts.partners import PurchaseRequest, PurchaseResult, Quote, QuoteRequest
from infra.db import Conn
from partners import earning
from partners._common import atomic, pricing_in_effect, summary
from partners.purchase_context import purchase_context
from partners.purchase_write import purchase_written_at_once
from shoppers import service as shoppers


@atomic
async def purchase(
    conn: Conn, partner_id: int, req: PurchaseRequest, *, idempotency_key: str
) -> PurchaseResult:
    """Earn on a purchase: base, tier bonus and campaigns in the partner's earn entry (at its
    issue price), network campaigns in a marketing-paid entry, then a referral bonus if this is
    the friend's first qualifying purchase. The breakdown sums to the points credited."""
    now = datetime.now(UTC)
    # One statement reads everything below; the checks keep their order and errors.
    ctx = await purchase_context(conn, partner_id, req, now=now)
    holder, pricing = ctx.holder, ctx.pricing
    basket = earning.basket_of(req.amount_minor, req.lines)
    assessment = earning.assess_read(
        partner_id, pricing, basket, ctx.rules, ctx.running, ctx.tier, ctx.facts, ctx.membership
    )
    items = await earning.award(conn, assessment, holder.shopper_id)
    return await purchase_written_at_once(
        conn, partner_id, req, ctx, basket, items, idempotency_key, now=now
    )


async def quote(conn: Conn, partner_id: int, req: QuoteRequest) -> Quote:
    """What the purchase would earn now; campaign items are cut to budgets and caps as last
    committed (a concurrent purchase may still take what is left first)."""
    pricing = await pricing_in_effect(conn, partner_id)
    balance = None
    shopper_id = None
    if req.card_number is not None:
        holder = await shoppers.resolve_card(conn, req.card_number)
        shopper_id = holder.shopper_id
        balance = (await summary(conn, shopper_id)).balance
    basket = earning.basket_of(req.amount_minor, req.lines)
    assessment = await earning.assess(
        conn, partner_id, pricing, basket, shopper_id=shopper_id, now=datetime.now(UTC)
    )
    items = await earning.estimate(conn, assessment, shopper_id)
    return Quote(
        points=sum(item.points for item in items),
        pricing_version=pricing.version,
        balance=balance,
        breakdown=[item.contract() for item in items],
    )
