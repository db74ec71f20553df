"""Paid membership ("Plus") wire contracts: operator plans, sales by partners (signed calls),
cancellation, and the shopper's own view.

Money is in integer minor units of the network's currency (the ledger keeps micros). A plan
version is immutable once created; a new version under the same code replaces it for new
sales, and memberships already sold keep their version. Rules and formulas: docs/membership.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from contracts.partners import AMOUNT_MINOR_MAX, CardNumber, Name, PartnerRef
from contracts.text import LINE_PATTERN

Term = Literal["monthly", "yearly"]
MembershipStatus = Literal["active", "cancelled", "expired"]

BPS_ONE = 10_000
EARN_MULTIPLIER_BPS_MIN = 10_000  # 1.0x: no extra points
EARN_MULTIPLIER_BPS_MAX = 50_000  # 5.0x
MONTHLY_BONUS_POINTS_MAX = 1_000_000
PERKS_MAX = 20
PERK_CHARS_MAX = 200
PLANS_LIMIT_MAX = 200

PlanCode = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
TierName = Annotated[str, msgspec.Meta(pattern=r"^[a-z]{1,32}$")]
Perk = Annotated[str, msgspec.Meta(min_length=1, max_length=PERK_CHARS_MAX, pattern=LINE_PATTERN)]
Reason = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=LINE_PATTERN)]
Bps = Annotated[int, msgspec.Meta(ge=0, le=BPS_ONE)]


class _Request(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    pass


class _Response(msgspec.Struct, kw_only=True):
    pass


class PlanBenefits(_Request):
    """What a member gets: `earn_multiplier_bps` on the base points of every purchase at every
    partner (20_000 = 2.0x: extra points = base x 1.0, paid by network marketing), a monthly
    bonus, a tier floor (the member is treated as at least that tier), and perks as text."""

    earn_multiplier_bps: Annotated[
        int, msgspec.Meta(ge=EARN_MULTIPLIER_BPS_MIN, le=EARN_MULTIPLIER_BPS_MAX)
    ] = EARN_MULTIPLIER_BPS_MIN
    monthly_bonus_points: Annotated[int, msgspec.Meta(ge=0, le=MONTHLY_BONUS_POINTS_MAX)] = 0
    tier_floor: TierName | None = None
    perks: Annotated[list[Perk], msgspec.Meta(max_length=PERKS_MAX)] = []


class PlanCreate(_Request):
    """A new plan, or a new version of the plan with this `code` (the older version stops
    selling). `commission_bps`: what the selling partner keeps of each fee; absent, the
    network's setting applies (read at each sale)."""

    code: PlanCode
    name: Name
    price_minor: Annotated[int, msgspec.Meta(ge=1, le=AMOUNT_MINOR_MAX)]
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
    term: Term
    benefits: PlanBenefits
    commission_bps: Bps | None = None


class Plan(_Response):
    id: int
    code: str
    version: int
    name: str
    price_minor: int
    currency: str
    term: Term
    benefits: PlanBenefits
    commission_bps: int | None
    sellable: bool  # the newest version of its code, not retired
    created_at: datetime


class PlanPage(_Response):
    items: list[Plan]


class MembershipSale(_Request):
    """The selling partner collected `price_minor` (the plan's price) from the shopper."""

    partner_ref: PartnerRef
    card_number: CardNumber
    plan_id: Annotated[int, msgspec.Meta(ge=1)]
    price_minor: Annotated[int, msgspec.Meta(ge=1, le=AMOUNT_MINOR_MAX)]
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
    auto_renew: bool = True


class MembershipCancel(_Request):
    reason: Reason | None = None


class Membership(_Response):
    """A membership as its selling partner (or the operator) sees it. Money in minor units:
    `fees_minor` charged so far (sale and renewals), `commission_minor` the seller kept,
    `refunded_minor` given back at cancellation."""

    id: int
    plan_id: int
    shopper_id: int
    partner_id: int
    partner_ref: str
    status: MembershipStatus
    auto_renew: bool
    started_at: datetime
    period_no: int
    period_start: datetime
    period_end: datetime
    cancelled_at: datetime | None
    fees_minor: int
    commission_minor: int
    refunded_minor: int
    bonus_points_granted: int
    bonus_points_reversed: int


class MyMembership(_Response):
    """The shopper's membership: plan, benefits and term (no partner-internal figures)."""

    member: bool
    status: MembershipStatus | None = None
    plan: Plan | None = None
    auto_renew: bool | None = None
    period_end: datetime | None = None
    bonus_points_granted: int = 0
