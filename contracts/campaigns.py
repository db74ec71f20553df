"""Campaign wire contracts: partner campaigns (signed calls), network campaigns (operator JWT),
and the offers a shopper sees.

A campaign has a time window, conditions (all must hold) and one reward: a multiplier on the
eligible base points (basis points, 20_000 = 2.0x, so the bonus is base x 1.0) or a fixed bonus.
Its points budget and per-shopper cap are never exceeded: an award is cut to what is left of
either (a partial award), and is zero when either is spent.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec

from contracts.partners import (
    AMOUNT_MINOR_MAX,
    MULTIPLIER_BPS_MAX,
    POINTS_MAX,
    Category,
    Name,
)

CAMPAIGNS_LIMIT_DEFAULT = 50
CAMPAIGNS_LIMIT_MAX = 200
CAMPAIGN_DAYS_MAX = 366 * 2  # the longest window a campaign may have
CAMPAIGN_BUDGET_POINTS_MAX = 10_000_000_000

Segment = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9_]+(:[a-z0-9_-]+)?$", max_length=64)]
TierName = Annotated[str, msgspec.Meta(pattern=r"^[a-z]{1,32}$")]
IsoWeekday = Annotated[int, msgspec.Meta(ge=1, le=7)]  # 1 = Monday ... 7 = Sunday
RewardKind = Literal["multiplier", "bonus"]


class _Request(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    pass


class _Response(msgspec.Struct, kw_only=True):
    pass


class CampaignConditions(_Request):
    """Every given condition must hold; an absent one does not restrict."""

    segment: Segment | None = None
    tier: TierName | None = None
    category: Category | None = None  # the basket holds this category; a multiplier applies to it
    basket_min_minor: Annotated[int, msgspec.Meta(ge=0, le=AMOUNT_MINOR_MAX)] | None = None
    first_purchase: bool = False  # the shopper's first purchase at the campaign's partner
    birthday_month: bool = False  # in the shopper's birth month
    days_of_week: Annotated[list[IsoWeekday], msgspec.Meta(min_length=1, max_length=7)] | None = (
        None
    )


class CampaignReward(_Request):
    """Exactly one of `multiplier_bps` (above 10_000) or `bonus_points`."""

    multiplier_bps: Annotated[int, msgspec.Meta(gt=10_000, le=MULTIPLIER_BPS_MAX)] | None = None
    bonus_points: Annotated[int, msgspec.Meta(ge=1, le=POINTS_MAX)] | None = None


class CampaignCreate(_Request):
    name: Name
    starts_at: datetime
    ends_at: datetime
    reward: CampaignReward
    budget_points: Annotated[int, msgspec.Meta(ge=1, le=CAMPAIGN_BUDGET_POINTS_MAX)]
    per_shopper_cap_points: Annotated[int, msgspec.Meta(ge=1, le=POINTS_MAX)]
    conditions: CampaignConditions = msgspec.field(default_factory=CampaignConditions)


class Campaign(_Response):
    id: int
    partner_id: int | None  # None: a network campaign, paid by network marketing
    name: str
    starts_at: datetime
    ends_at: datetime
    conditions: CampaignConditions
    reward: CampaignReward
    budget_points: int
    awarded_points: int
    per_shopper_cap_points: int
    created_at: datetime
    ended_at: datetime | None = None


class CampaignPage(_Response):
    items: list[Campaign]
    next_cursor: str | None = None


class Offer(_Response):
    """A campaign that applies to a shopper now; basket conditions are shown, not yet checked."""

    campaign_id: int
    partner_id: int | None
    name: str
    reward_kind: RewardKind
    ends_at: datetime
    multiplier_bps: int | None = None
    bonus_points: int | None = None
    category: str | None = None
    basket_min_minor: int | None = None
    first_purchase: bool = False
    points_left_for_shopper: int = 0


class BurnDownDay(_Response):
    """One UTC day of a campaign: what it awarded and got back that day, and what is left of
    its budget at the end of the day."""

    day: date
    awarded_points: int
    returned_points: int  # given back by refunds of purchases that had campaign points
    budget_left_points: int


class CampaignBurnDown(_Response):
    """A campaign's budget day by day, from the day it starts to the day it stops or today,
    whichever comes first; every day is present, days without activity too."""

    campaign_id: int
    budget_points: int
    starts_at: datetime
    stops_at: datetime  # ends_at, or ended_at when the campaign was ended earlier
    days: list[BurnDownDay]
