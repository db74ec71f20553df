"""Campaigns: partner-defined (a partner's signed calls) and network-wide (operator, role admin).

A campaign runs in [starts_at, ends_at) until ended, rewards a purchase whose conditions all
hold, and never awards more than its points budget in total or its per-shopper cap to one
shopper. An award is cut to what is left of either (a partial award) and is zero once either is
spent; the cut happens in one SQL function (`campaign_award`, migration 0050) that locks the
shopper's award row and then the campaign row, campaigns in ascending id order, so concurrent
purchases cannot overshoot and cannot deadlock each other.

Who pays: a partner campaign's points are part of that partner's earn entry, at its issue
price; a network campaign's points are a separate entry paid by `network:marketing`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from contracts import cursors
from contracts.campaigns import (
    CAMPAIGN_DAYS_MAX,
    CAMPAIGNS_LIMIT_MAX,
    Campaign,
    CampaignConditions,
    CampaignCreate,
    CampaignPage,
    CampaignReward,
    Offer,
)
from contracts.partners import BPS_ONE
from infra.db import Conn
from partners import queries
from partners._common import aware
from partners.errors import CampaignInvalid, CursorInvalid, NotFound
from shoppers import tiers

__all__ = [
    "CAMPAIGNS_PER_PURCHASE_MAX",
    "OFFERS_MAX",
    "CampaignRule",
    "ShopperFacts",
    "award",
    "create",
    "end",
    "facts_of",
    "get",
    "list_page",
    "offers_for_shopper",
    "rules_from_json",
    "running_at",
    "shopper_facts",
]

CAMPAIGNS_PER_PURCHASE_MAX = 50  # running campaigns one purchase considers, oldest first
OFFERS_MAX = 50


@dataclass(frozen=True)
class CampaignRule:
    """A running campaign as the earn computation sees it."""

    id: int
    partner_id: int | None
    name: str
    segment: str | None
    tier: str | None
    category: str | None
    basket_min_minor: int | None
    first_purchase: bool
    birthday_month: bool
    days_of_week: frozenset[int]
    multiplier_bps: int | None
    bonus_points: int | None
    budget_left: int
    per_shopper_cap_points: int

    @property
    def paid_by_network(self) -> bool:
        return self.partner_id is None

    @property
    def needs_shopper(self) -> bool:
        return bool(self.segment or self.tier or self.first_purchase or self.birthday_month)

    def basket_holds(self, amount_minor: int, categories: frozenset[str]) -> bool:
        if self.basket_min_minor is not None and amount_minor < self.basket_min_minor:
            return False
        return self.category is None or self.category in categories

    def shopper_holds(self, facts: ShopperFacts, *, partner_id: int | None) -> bool:
        """The shopper-side conditions; `partner_id` is where the purchase happens (or None)."""
        if self.days_of_week and facts.weekday not in self.days_of_week:
            return False
        if self.segment is not None and self.segment not in facts.segments:
            return False
        if self.tier is not None and facts.tier_rank < _tier_rank(self.tier):
            return False
        if self.birthday_month and facts.birth_month != facts.month:
            return False
        if self.first_purchase:
            at = self.partner_id if self.partner_id is not None else partner_id
            if at is not None and at in facts.purchased_at:
                return False
        return True

    def wanted(self, base_points: int, base_points_by_category: dict[str, int]) -> int:
        """The bonus before budget and cap: floor(eligible base x (multiplier - 1)) or fixed."""
        if self.bonus_points is not None:
            return self.bonus_points
        assert self.multiplier_bps is not None, self
        assert self.multiplier_bps > BPS_ONE, self
        eligible = (
            base_points if self.category is None else base_points_by_category.get(self.category, 0)
        )
        return eligible * (self.multiplier_bps - BPS_ONE) // BPS_ONE


@dataclass(frozen=True)
class ShopperFacts:
    """What campaign conditions read about a shopper, at one moment."""

    segments: frozenset[str]
    tier_rank: int
    birth_month: int | None
    weekday: int  # ISO, in the network's time zone
    month: int
    purchased_at: frozenset[int]  # partners where the shopper has made a purchase

    @classmethod
    def anonymous(cls, *, now: datetime, time_zone: str) -> ShopperFacts:
        local = now.astimezone(ZoneInfo(time_zone))
        return cls(frozenset(), 0, None, local.isoweekday(), local.month, frozenset())


# ---- management ------------------------------------------------------------------------------


async def create(
    conn: Conn, partner_id: int | None, req: CampaignCreate, *, actor: str
) -> Campaign:
    """A new campaign of a partner, or of the network when `partner_id` is None."""
    starts_at, ends_at = aware(req.starts_at), aware(req.ends_at)
    _check(req, starts_at, ends_at, now=datetime.now(UTC))
    c = req.conditions
    row = await conn.fetchrow(
        queries.INSERT_CAMPAIGN,
        partner_id,
        req.name,
        starts_at,
        ends_at,
        c.segment,
        c.tier,
        c.category,
        c.basket_min_minor,
        c.first_purchase,
        c.birthday_month,
        sorted(set(c.days_of_week)) if c.days_of_week else None,
        req.reward.multiplier_bps,
        req.reward.bonus_points,
        req.budget_points,
        req.per_shopper_cap_points,
        actor,
    )
    assert row is not None, "an INSERT ... RETURNING returns its row"
    return _campaign(row)


async def get(conn: Conn, partner_id: int | None, campaign_id: int) -> Campaign:
    row = await conn.fetchrow(queries.CAMPAIGN, campaign_id, partner_id)
    if row is None:
        raise NotFound("campaign")
    return _campaign(row)


async def end(conn: Conn, partner_id: int | None, campaign_id: int) -> Campaign:
    """End a campaign now (idempotent: ending again keeps the first end time)."""
    row = await conn.fetchrow(queries.END_CAMPAIGN, campaign_id, partner_id)
    if row is None:
        raise NotFound("campaign")
    return _campaign(row)


async def list_page(
    conn: Conn, partner_id: int | None, *, cursor: str | None, limit: int
) -> CampaignPage:
    assert 1 <= limit <= CAMPAIGNS_LIMIT_MAX, limit
    before_id = _decode_cursor(cursor) if cursor else None
    rows = await conn.fetch(queries.CAMPAIGNS_PAGE, partner_id, before_id, limit + 1)
    items = [_campaign(row) for row in rows[:limit]]
    next_cursor = _encode_cursor(rows[limit - 1]["id"]) if len(rows) > limit else None
    return CampaignPage(items=items, next_cursor=next_cursor)


# ---- applying --------------------------------------------------------------------------------


async def running_at(conn: Conn, partner_id: int, *, now: datetime) -> list[CampaignRule]:
    """The partner's and the network's running campaigns with budget left, in id order."""
    rows = await conn.fetch(
        queries.CAMPAIGNS_RUNNING_AT, partner_id, now, CAMPAIGNS_PER_PURCHASE_MAX
    )
    return [_rule(row) for row in rows]


def rules_from_json(running_json: str | None) -> list[CampaignRule]:
    """The running campaigns as `queries.PURCHASE_CONTEXT` returns them (a JSON array of
    campaign rows in id order, or NULL for none)."""
    if running_json is None:
        return []
    rows = msgspec.json.decode(running_json, type=list[dict[str, Any]])
    assert len(rows) <= CAMPAIGNS_PER_PURCHASE_MAX, len(rows)
    return [_rule(row) for row in rows]


async def shopper_facts(conn: Conn, shopper_id: int, *, now: datetime) -> ShopperFacts:
    row = await conn.fetchrow(queries.SHOPPER_FACTS, shopper_id)
    assert row is not None, "a resolved shopper exists"
    purchased = await conn.fetch(queries.PARTNERS_PURCHASED_AT, shopper_id)
    return facts_of(
        segments=row["segments"],
        tier=await tiers.effective_tier_of(conn, shopper_id, now=now),
        birth_date=row["birth_date"],
        purchased_at=(r["partner_id"] for r in purchased),
        time_zone=row["time_zone"],
        now=now,
    )


def facts_of(
    *,
    segments: Iterable[str],
    tier: tiers.Tier,
    birth_date: date | None,
    purchased_at: Iterable[int],
    time_zone: str,
    now: datetime,
) -> ShopperFacts:
    """A shopper's facts from what was read about them; weekday and month in `time_zone`."""
    local = now.astimezone(ZoneInfo(time_zone))
    return ShopperFacts(
        segments=frozenset(segments),
        tier_rank=tier.rank,
        birth_month=None if birth_date is None else birth_date.month,
        weekday=local.isoweekday(),
        month=local.month,
        purchased_at=frozenset(purchased_at),
    )


async def award(conn: Conn, campaign_id: int, shopper_id: int, wanted_points: int) -> int:
    """Grant up to `wanted_points`; returns what was granted (cut by cap and budget).

    Call in ascending campaign id within one transaction (the lock order).
    """
    granted: int = await conn.fetchval(
        queries.CAMPAIGN_AWARD, campaign_id, shopper_id, wanted_points
    )
    assert 0 <= granted <= wanted_points, (granted, wanted_points)
    return granted


async def cap_left(conn: Conn, shopper_id: int, rules: Sequence[CampaignRule]) -> dict[int, int]:
    """What each campaign may still give this shopper (cap and budget), read without locks."""
    rows = await conn.fetch(queries.SHOPPER_AWARDS, shopper_id, [r.id for r in rules])
    had = {row["campaign_id"]: row["points"] for row in rows}
    return {
        r.id: max(0, min(r.per_shopper_cap_points - had.get(r.id, 0), r.budget_left)) for r in rules
    }


async def offers_for_shopper(
    conn: Conn, shopper_id: int, *, partner_id: int | None = None
) -> list[Offer]:
    """Campaigns that apply to the shopper now: the network's, plus that partner's (or every
    partner's when `partner_id` is None). Shopper conditions (segment, tier, birthday month,
    day of week, first purchase) are checked; basket conditions (category, basket size) are
    shown in the offer for the checkout to apply. Campaigns whose budget or the shopper's cap
    is spent are left out."""
    now = datetime.now(UTC)
    rows = await conn.fetch(queries.CAMPAIGNS_RUNNING_FOR_OFFERS, partner_id, now, OFFERS_MAX)
    if not rows:
        return []
    facts = await shopper_facts(conn, shopper_id, now=now)
    rules = [rule for rule in map(_rule, rows) if rule.shopper_holds(facts, partner_id=partner_id)]
    left = await cap_left(conn, shopper_id, rules)
    by_id = {row["id"]: row for row in rows}
    return [
        Offer(
            campaign_id=rule.id,
            partner_id=rule.partner_id,
            name=rule.name,
            reward_kind="bonus" if rule.bonus_points is not None else "multiplier",
            ends_at=by_id[rule.id]["ends_at"],
            multiplier_bps=rule.multiplier_bps,
            bonus_points=rule.bonus_points,
            category=rule.category,
            basket_min_minor=rule.basket_min_minor,
            first_purchase=rule.first_purchase,
            points_left_for_shopper=left[rule.id],
        )
        for rule in rules
        if left[rule.id] > 0
    ]


# ---- helpers ---------------------------------------------------------------------------------


def _tier_rank(name: str) -> int:
    return tiers.TIER_BY_NAME[name].rank


def _check(req: CampaignCreate, starts_at: datetime, ends_at: datetime, *, now: datetime) -> None:
    if ends_at <= starts_at:
        raise CampaignInvalid("ends_at must be after starts_at")
    if ends_at <= now:
        raise CampaignInvalid("the campaign would end in the past")
    if ends_at - starts_at > timedelta(days=CAMPAIGN_DAYS_MAX):
        raise CampaignInvalid(f"a campaign runs at most {CAMPAIGN_DAYS_MAX} days")
    if (req.reward.multiplier_bps is None) == (req.reward.bonus_points is None):
        raise CampaignInvalid("give exactly one reward: multiplier_bps or bonus_points")
    if req.conditions.tier is not None and req.conditions.tier not in tiers.TIER_BY_NAME:
        known = ", ".join(tiers.TIER_BY_NAME)
        raise CampaignInvalid(f"unknown tier {req.conditions.tier!r} (one of {known})")


def _rule(row: asyncpg.Record | Mapping[str, Any]) -> CampaignRule:
    return CampaignRule(
        id=row["id"],
        partner_id=row["partner_id"],
        name=row["name"],
        segment=row["segment"],
        tier=row["tier"],
        category=row["category"],
        basket_min_minor=row["basket_min_minor"],
        first_purchase=row["first_purchase"],
        birthday_month=row["birthday_month"],
        days_of_week=frozenset(row["days_of_week"] or ()),
        multiplier_bps=row["multiplier_bps"],
        bonus_points=row["bonus_points"],
        budget_left=row["budget_points"] - row["awarded_points"],
        per_shopper_cap_points=row["per_shopper_cap_points"],
    )


def _campaign(row: asyncpg.Record) -> Campaign:
    return Campaign(
        id=row["id"],
        partner_id=row["partner_id"],
        name=row["name"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        conditions=CampaignConditions(
            segment=row["segment"],
            tier=row["tier"],
            category=row["category"],
            basket_min_minor=row["basket_min_minor"],
            first_purchase=row["first_purchase"],
            birthday_month=row["birthday_month"],
            days_of_week=list(row["days_of_week"]) if row["days_of_week"] else None,
        ),
        reward=CampaignReward(
            multiplier_bps=row["multiplier_bps"], bonus_points=row["bonus_points"]
        ),
        budget_points=row["budget_points"],
        awarded_points=row["awarded_points"],
        per_shopper_cap_points=row["per_shopper_cap_points"],
        created_at=row["created_at"],
        ended_at=row["ended_at"],
    )


_CURSOR_VERSION = "c1:"


def _encode_cursor(campaign_id: int) -> str:
    return cursors.encode_id(_CURSOR_VERSION, campaign_id)


def _decode_cursor(cursor: str) -> int:
    found = cursors.decode_id(_CURSOR_VERSION, cursor)
    if found is None:
        raise CursorInvalid()
    return found
