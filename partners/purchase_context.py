"""A purchase's read: everything it needs before it writes, in one round trip, checked.

The single purchase reads it with `queries.PURCHASE_CONTEXT`; `purchase_many` reads many at
once with `queries.PURCHASE_CONTEXT_MANY` and checks each row with the same
`purchase_context_of`, so both refuse a purchase with the same error, in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from contracts.partners import PurchaseRequest
from infra.db import Conn
from partners import campaigns, earn_rules, earning, queries
from partners._common import Pricing, pricing_of
from partners.errors import CurrencyUnsupported, PartnerRefConflict
from shoppers import referrals, tiers
from shoppers import service as shoppers


@dataclass(frozen=True)
class PurchaseContext:
    """What a purchase reads before it writes (`queries.PURCHASE_CONTEXT`), checked."""

    holder: shoppers.CardHolder
    pricing: Pricing
    rules: earn_rules.Rules
    running: list[campaigns.CampaignRule]  # in id order: the award lock order
    tier: tiers.Tier  # qualified (the partner pays its tier bonus)
    facts: campaigns.ShopperFacts  # the tier in them floored by a paid membership
    membership: earning.MembershipBenefit
    expires_at: datetime  # of the points earned now, under the network's lifetime
    # False: the purchase's amount does not qualify, or no referral of this shopper waits for
    # its reward and none ever will (a referral is registered only with the shopper's
    # enrollment and rewarded_at never returns to NULL), so no reward can be due and the
    # referral step is skipped. True: the step (`purchase_referral`) decides, under its lock.
    referral_may_pay: bool


async def purchase_context(
    conn: Conn, partner_id: int, req: PurchaseRequest, *, now: datetime
) -> PurchaseContext:
    """Read in one round trip, then check in the order the purchase's errors have always had:
    currency (CurrencyUnsupported), card (CardUnknown, CardBlocked), pricing
    (PricingNotEffective), partner_ref (PartnerRefConflict)."""
    row = await conn.fetchrow(
        queries.PURCHASE_CONTEXT,
        partner_id,
        req.card_number,
        req.partner_ref,
        now,
        campaigns.CAMPAIGNS_PER_PURCHASE_MAX,
    )
    assert row is not None, "network_settings has its one row"
    return purchase_context_of(row, req, now=now)


def purchase_context_of(
    row: asyncpg.Record, req: PurchaseRequest, *, now: datetime
) -> PurchaseContext:
    """The checked context from a row of `queries.PURCHASE_CONTEXT` (or of its batch form,
    `queries.PURCHASE_CONTEXT_MANY`): raises the purchase's read errors in their order."""
    if req.currency != row["currency"]:
        raise CurrencyUnsupported(req.currency, row["currency"])
    holder = shoppers.holder_of(req.card_number, row["shopper_id"], row["card_status"])
    pricing = pricing_of(row, version_column="pricing_version")
    if row["ref_taken"]:
        raise PartnerRefConflict(req.partner_ref)
    tier = tiers.BASE_TIER if row["tier"] is None else tiers.TIER_BY_NAME[row["tier"]]
    membership = earning.membership_benefit_of(
        row["membership_multiplier_bps"], row["membership_tier_floor"]
    )
    return PurchaseContext(
        holder=holder,
        pricing=pricing,
        rules=earning.rules_of(
            row["min_basket_minor"],
            row["categories"],
            row["category_multipliers_bps"],
            row["categories_excluded"],
        ),
        running=campaigns.rules_from_json(row["running_campaigns"]),
        tier=tier,
        membership=membership,
        facts=campaigns.facts_of(
            segments=row["segments"],
            tier=membership.floored(tier),
            birth_date=row["birth_date"],
            purchased_at=row["purchased_at"] or (),  # NULL: no first-purchase campaign runs
            time_zone=row["time_zone"],
            now=now,
        ),
        expires_at=row["expires_at"],
        referral_may_pay=row["referral_pending"] and referrals.qualifies(req.amount_minor),
    )
