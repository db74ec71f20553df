"""What the card page shows, read through the same service functions as `/v1/me`.

No SQL here: each value comes from `shoppers.account`, `shoppers.referrals`,
`shoppers.partner_consent`, `shoppers.challenges` or `partners.campaigns`, exactly as the API
routes call them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from contracts.campaigns import Offer
from contracts.challenges import MyChallenges
from contracts.shoppers import Balance, Card, Expiring, HistoryPage, TierProgress
from infra.db import Conn
from partners import campaigns
from shoppers import account, partner_consent, referrals, tiers
from shoppers.challenges import view as challenges
from shoppers.partner_consent import PartnerConsent

HISTORY_ON_CARD = 10
HISTORY_PAGE = 25
PERCENT = 100


@dataclass(frozen=True)
class CardView:
    shopper_id: int
    card: Card | None  # the active card; None when every card is blocked or replaced
    balance: Balance
    expiring: Expiring
    tier: TierProgress
    tier_percent: int  # progress to the next tier, the better of points and spend
    history: HistoryPage
    offers: list[Offer]
    challenges: MyChallenges
    referral_code: str
    consents: list[PartnerConsent]

    @property
    def partner_names(self) -> dict[int, str]:
        return {consent.partner_id: consent.name for consent in self.consents}


async def card_view(conn: Conn, shopper_id: int, *, now: datetime) -> CardView:
    shopper_id = await account.live_shopper_id(conn, shopper_id)
    profile = await account.profile(conn, shopper_id)
    tier = await account.tier(conn, shopper_id, now=now)
    return CardView(
        shopper_id=shopper_id,
        card=next((card for card in profile.cards if card.status == "active"), None),
        balance=await account.balance(conn, shopper_id, now=now),
        expiring=await account.expiring(conn, shopper_id, now=now),
        tier=tier,
        tier_percent=tier_percent(tier),
        history=await account.history(conn, shopper_id, cursor=None, limit=HISTORY_ON_CARD),
        offers=await campaigns.offers_for_shopper(conn, shopper_id),
        challenges=await challenges.mine(conn, shopper_id, now=now),
        referral_code=await referrals.code_for(conn, shopper_id),
        consents=await partner_consent.partner_consents(conn, shopper_id),
    )


def tier_percent(tier: TierProgress) -> int:
    """How far along to the next tier, 0..100; 100 at the top tier."""
    if tier.next_tier is None:
        return PERCENT
    target = tiers.TIER_BY_NAME[tier.next_tier]
    by_points = tier.points_earned_12m * PERCENT // max(target.points_earned_min, 1)
    by_spend = tier.spend_minor_12m * PERCENT // max(target.spend_minor_min, 1)
    return max(0, min(PERCENT - 1, max(by_points, by_spend)))


@dataclass(frozen=True)
class HistoryView:
    history: HistoryPage
    consents: list[PartnerConsent]


async def history_view(conn: Conn, shopper_id: int, *, cursor: str | None) -> HistoryView:
    return HistoryView(
        history=await account.history(conn, shopper_id, cursor=cursor, limit=HISTORY_PAGE),
        consents=await partner_consent.partner_consents(conn, shopper_id),
    )


async def points_of(conn: Conn, shopper_id: int, *, now: datetime) -> int:
    """The balance the erasure confirmation names (what the shopper gives up)."""
    return (await account.balance(conn, shopper_id, now=now)).balance
