"""Checkout personalization: what a partner's till learns about the card in front of it.

Balance, tier and progress, points expiring soon, segments, the offers that apply at this
partner and, only when the shopper consented to data sharing, a next-best-offer hint: a
category the shopper buys elsewhere in the network but not here (the category only; never
where, when or how much).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from contracts.analytics import NextBestOffer, ShopperProfile, TierProgress
from contracts.campaigns import Offer
from contracts.partners import ExpiringPoints
from infra.db import Conn
from ledger import service as ledger
from shoppers import _analytics_queries as q
from shoppers import segments, service, tiers

__all__ = ["EXPIRING_WITHIN_S", "OFFERS_MAX", "OffersFn", "checkout_profile"]

EXPIRING_WITHIN_S = 30 * 24 * 3600
OFFERS_MAX = 20
# Segments a partner may see without consent: not derived from other partners' data.
SEGMENTS_WITHOUT_CONSENT = frozenset({"birthday_month"})

# (conn, shopper_id, partner_id) -> the offers that apply at that partner. Injected by the
# caller so that shoppers/ does not import partners/ (which imports shoppers/).
OffersFn = Callable[[Conn, int, int], Awaitable[Sequence[Offer]]]


async def checkout_profile(
    conn: Conn,
    partner_id: int,
    card_number: str,
    *,
    now: datetime,
    offers_for: OffersFn,
) -> ShopperProfile:
    holder = await service.resolve_card(conn, card_number)  # raises CardUnknown
    summary = await ledger.wallet_summary(
        conn, shopper_id=holder.shopper_id, now=now, expiring_within_s=EXPIRING_WITHIN_S
    )
    tier = await tiers.tier_status(conn, holder.shopper_id, now=now)
    consented: bool = await conn.fetchval(q.DATA_SHARING, holder.shopper_id)
    member_of = await segments.segments_of(conn, holder.shopper_id)
    if not consented:  # consent is enforced at read time, not only at the next refresh
        member_of = [s for s in member_of if s in SEGMENTS_WITHOUT_CONSENT]
    hint = None
    if consented:
        hint = await conn.fetchval(q.NEXT_BEST_CATEGORY, holder.shopper_id, partner_id)
    offers = list(await offers_for(conn, holder.shopper_id, partner_id))[:OFFERS_MAX]
    return ShopperProfile(
        card_number=holder.card_number,
        balance=summary.balance,
        held=summary.held,
        tier=TierProgress(
            tier=tier.tier,
            multiplier_bps=tier.multiplier_bps,
            next_tier=tier.next_tier,
            points_to_next=tier.points_to_next,
            spend_minor_to_next=tier.spend_minor_to_next,
        ),
        points_expiring=[
            ExpiringPoints(points=lot.points, expires_at=lot.expires_at) for lot in summary.expiring
        ],
        points_expiring_total=sum(lot.points for lot in summary.expiring),
        expiring_within_days=EXPIRING_WITHIN_S // 86_400,
        segments=member_of,
        offers=offers,
        data_sharing=consented,
        next_best_offer=None if hint is None else NextBestOffer(category=hint),
    )
