"""The points a purchase earns, item by item: base, tier bonus, each campaign.

Rounding: every item is floored on its own, in integers, so the items sum exactly to the
points posted (no item is derived from a rounded total).

- base = floor(weighted_minor x earn_points / (earn_spend_minor x 10_000)), where
  weighted_minor sums each basket line's amount times its category multiplier (excluded
  categories: 0) plus the part of the amount no line covers at 1.0x. Flooring the whole basket
  once, not line by line, loses at most one point per purchase. Without lines this is the
  pricing contract's base rate, floor(amount_minor x earn_points / earn_spend_minor).
- tier bonus = floor(base x (tier multiplier - 10_000) / 10_000), paid by the partner.
- campaign bonus = floor(eligible base x (multiplier - 10_000) / 10_000), or the fixed bonus,
  where the eligible base is the base of the campaign's category (or the whole base); then cut
  to what is left of the campaign's budget and the shopper's cap.
- membership bonus (an active paid membership, partners/membership) =
  floor(base x (plan multiplier - 10_000) / 10_000), plus, when the plan's tier floor is above
  the qualified tier, the floor's tier bonus minus the qualified tier's; paid by the network
  (network:marketing), never by the partner, in the purchase's network-paid entry.
- below the partner's minimum basket the purchase earns nothing (a single base item of 0).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from contracts.partners import BPS_ONE, BreakdownItem, Line
from infra.db import Conn
from partners import campaigns, earn_rules, queries
from partners._common import Pricing
from partners.errors import LinesExceedAmount
from shoppers import tiers

UNCATEGORIZED = "uncategorized"  # the category stored for a line that names none

Kind = Literal["base", "tier_bonus", "campaign", "referral", "membership"]
Payer = Literal["partner", "network"]


@dataclass(frozen=True)
class Basket:
    amount_minor: int
    lines: tuple[tuple[str, int], ...]  # (category, amount_minor of the line)

    @property
    def categories(self) -> frozenset[str]:
        return frozenset(category for category, _ in self.lines)


def basket_of(amount_minor: int, lines: Sequence[Line] | None) -> Basket:
    """A line's amount_minor is the line's total (all its units); lines may cover part of the
    purchase, never more than all of it."""
    items = tuple((line.category or UNCATEGORIZED, line.amount_minor) for line in lines or ())
    lines_minor = sum(amount for _, amount in items)
    if lines_minor > amount_minor:
        raise LinesExceedAmount(lines_minor=lines_minor, amount_minor=amount_minor)
    return Basket(amount_minor, items)


@dataclass(frozen=True)
class BaseEarn:
    points: int
    points_by_category: dict[str, int]


def base_earn(pricing: Pricing, rules: earn_rules.Rules, basket: Basket) -> BaseEarn:
    if basket.amount_minor < rules.min_basket_minor:
        return BaseEarn(0, {})
    divisor = pricing.earn_spend_minor * BPS_ONE
    unlisted_minor = basket.amount_minor - sum(amount for _, amount in basket.lines)
    weighted_by_category: dict[str, int] = {}
    for category, amount in basket.lines:
        weighted = amount * rules.line_multiplier_bps(category)
        weighted_by_category[category] = weighted_by_category.get(category, 0) + weighted
    weighted_minor = unlisted_minor * BPS_ONE + sum(weighted_by_category.values())
    return BaseEarn(
        points=weighted_minor * pricing.earn_points // divisor,
        points_by_category={
            category: weighted * pricing.earn_points // divisor
            for category, weighted in weighted_by_category.items()
        },
    )


def tier_bonus(base_points: int, multiplier_bps: int) -> int:
    return max(0, base_points * (multiplier_bps - BPS_ONE) // BPS_ONE)


@dataclass(frozen=True)
class Item:
    kind: Kind
    points: int
    paid_by: Payer
    campaign_id: int | None = None
    name: str | None = None

    def contract(self) -> BreakdownItem:
        return BreakdownItem(
            kind=self.kind,
            points=self.points,
            paid_by=self.paid_by,
            campaign_id=self.campaign_id,
            name=self.name,
        )


@dataclass(frozen=True)
class Bonus:
    rule: campaigns.CampaignRule
    wanted: int


@dataclass(frozen=True)
class Assessment:
    """What a purchase would earn before campaign budgets and caps are applied."""

    base: int
    tier_bonus: int
    bonuses: tuple[Bonus, ...]  # in ascending campaign id: the award lock order
    membership_bonus: int = 0  # paid by the network

    def fixed_items(self) -> list[Item]:
        items = [Item("base", self.base, "partner")]
        if self.tier_bonus > 0:
            items.append(Item("tier_bonus", self.tier_bonus, "partner"))
        if self.membership_bonus > 0:
            items.append(Item("membership", self.membership_bonus, "network"))
        return items


@dataclass(frozen=True)
class MembershipBenefit:
    """What an active paid membership adds to a purchase (`NO_MEMBERSHIP`: nothing)."""

    multiplier_bps: int
    tier_floor: tiers.Tier | None

    def bonus(self, base_points: int, tier: tiers.Tier) -> int:
        extra = max(0, base_points * (self.multiplier_bps - BPS_ONE) // BPS_ONE)
        if self.tier_floor is not None and self.tier_floor.rank > tier.rank:
            extra += tier_bonus(base_points, self.tier_floor.multiplier_bps) - tier_bonus(
                base_points, tier.multiplier_bps
            )
        return extra

    def floored(self, tier: tiers.Tier) -> tiers.Tier:
        """The tier campaign conditions see: at least the plan's floor."""
        if self.tier_floor is not None and self.tier_floor.rank > tier.rank:
            return self.tier_floor
        return tier


NO_MEMBERSHIP = MembershipBenefit(BPS_ONE, None)


def membership_benefit_of(multiplier_bps: int | None, tier_floor: str | None) -> MembershipBenefit:
    """The benefit from its columns (`queries.PURCHASE_CONTEXT`: NULL without a membership)."""
    if multiplier_bps is None:
        return NO_MEMBERSHIP
    floor = None if tier_floor is None else tiers.TIER_BY_NAME[tier_floor]
    return MembershipBenefit(multiplier_bps, floor)


async def assess(
    conn: Conn,
    partner_id: int,
    pricing: Pricing,
    basket: Basket,
    *,
    shopper_id: int | None,
    now: datetime,
) -> Assessment:
    """Read the partner's rules, the running campaigns and the shopper, then assess (a quote's
    path; a purchase reads the same in one statement, see `purchase_context`)."""
    rules = await earn_rules.load(conn, partner_id)
    if basket.amount_minor < rules.min_basket_minor:
        return Assessment(0, 0, ())
    running = await campaigns.running_at(conn, partner_id, now=now)
    if shopper_id is None:
        time_zone: str = await conn.fetchval(queries.NETWORK_TIME_ZONE)
        facts = campaigns.ShopperFacts.anonymous(now=now, time_zone=time_zone)
        running = [rule for rule in running if not rule.needs_shopper]
        return assess_read(partner_id, pricing, basket, rules, running, tiers.BASE_TIER, facts)
    tier = await tiers.tier_of(conn, shopper_id)
    facts = await campaigns.shopper_facts(conn, shopper_id, now=now)
    row = await conn.fetchrow(queries.MEMBERSHIP_BENEFIT, shopper_id, now)
    benefit = (
        NO_MEMBERSHIP
        if row is None
        else membership_benefit_of(row["earn_multiplier_bps"], row["tier_floor"])
    )
    facts = dataclasses.replace(facts, tier_rank=benefit.floored(tier).rank)
    return assess_read(partner_id, pricing, basket, rules, running, tier, facts, benefit)


def assess_read(
    partner_id: int,
    pricing: Pricing,
    basket: Basket,
    rules: earn_rules.Rules,
    running: Sequence[campaigns.CampaignRule],
    tier: tiers.Tier,
    facts: campaigns.ShopperFacts,
    membership: MembershipBenefit = NO_MEMBERSHIP,
) -> Assessment:
    """The assessment from what was read: the partner's rules, its running campaigns (in id
    order), the shopper's qualified tier (the base tier for an anonymous quote), facts (their
    tier already floored by the membership) and the membership's benefit."""
    if basket.amount_minor < rules.min_basket_minor:
        return Assessment(0, 0, ())
    base = base_earn(pricing, rules, basket)
    bonuses = tuple(
        Bonus(rule, wanted)
        for rule in running
        if rule.basket_holds(basket.amount_minor, basket.categories)
        and rule.shopper_holds(facts, partner_id=partner_id)
        and (wanted := rule.wanted(base.points, base.points_by_category)) > 0
    )
    return Assessment(
        base.points,
        tier_bonus(base.points, tier.multiplier_bps),
        bonuses,
        membership.bonus(base.points, tier),
    )


def rules_of(
    min_basket_minor: int,
    categories: Sequence[str],
    multipliers_bps: Sequence[int],
    excluded: Sequence[bool],
) -> earn_rules.Rules:
    """The earn rules from their columns (`queries.PURCHASE_CONTEXT`), as `earn_rules.load`
    builds them."""
    assert len(categories) == len(multipliers_bps) == len(excluded), categories
    rows = list(zip(categories, multipliers_bps, excluded, strict=True))
    return earn_rules.Rules(
        min_basket_minor=min_basket_minor,
        multiplier_bps_by_category={c: m for c, m, e in rows if not e},
        excluded=frozenset(c for c, _, e in rows if e),
    )


async def award(conn: Conn, assessment: Assessment, shopper_id: int) -> list[Item]:
    """Award the campaign bonuses (budget and cap taken now, in this transaction)."""
    items = assessment.fixed_items()
    for bonus in sorted(assessment.bonuses, key=lambda b: b.rule.id):
        granted = await campaigns.award(conn, bonus.rule.id, shopper_id, bonus.wanted)
        if granted > 0:
            items.append(_campaign_item(bonus.rule, granted))
    return items


async def estimate(conn: Conn, assessment: Assessment, shopper_id: int | None) -> list[Item]:
    """The items a purchase would get now, cut to budgets and caps as last committed."""
    items = assessment.fixed_items()
    rules = [bonus.rule for bonus in assessment.bonuses]
    if shopper_id is not None:
        left = await campaigns.cap_left(conn, shopper_id, rules)
    else:
        left = {rule.id: min(rule.budget_left, rule.per_shopper_cap_points) for rule in rules}
    for bonus in assessment.bonuses:
        if (points := min(bonus.wanted, left[bonus.rule.id])) > 0:
            items.append(_campaign_item(bonus.rule, points))
    return items


def stored_columns(basket: Basket, items: Sequence[Item]) -> tuple[list[Any], ...]:
    """The basket lines and the breakdown as the column arrays the purchase statements take
    (`PURCHASE_WRITE`): categories, amounts; kinds, points, campaign ids, payers."""
    return (
        [category for category, _ in basket.lines],
        [amount for _, amount in basket.lines],
        [item.kind for item in items],
        [item.points for item in items],
        [item.campaign_id for item in items],
        [item.paid_by for item in items],
    )


def _campaign_item(rule: campaigns.CampaignRule, points: int) -> Item:
    payer: Payer = "network" if rule.paid_by_network else "partner"
    return Item("campaign", points, payer, campaign_id=rule.id, name=rule.name)
