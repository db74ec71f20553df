"""Wire contracts of personalization and analytics: checkout profiles, partner insights and
operator analytics.

Rates are exact: an integer in basis points of a percentage (`*_bps`, 1 = 0.01 percentage
point, rounded half away from zero) and the same value as a decimal string with two decimals
(`"12.34"` percent). Money is in integer minor units (`*_minor`) or micro-units (`*_micros`).
A figure suppressed by k-anonymity is `null` with `suppressed: true`.
"""

from __future__ import annotations

from datetime import date, datetime

import msgspec

from contracts.campaigns import Offer
from contracts.partners import ExpiringPoints

K_ANONYMITY_MIN = 10  # a cross-partner figure about fewer shoppers than this is never released


class _Response(msgspec.Struct, kw_only=True):
    """Base of every response body."""


# ---- checkout profile ---------------------------------------------------------------------------


class TierProgress(_Response):
    tier: str
    multiplier_bps: int
    next_tier: str | None
    points_to_next: int | None
    spend_minor_to_next: int | None


class NextBestOffer(_Response):
    """A category the shopper buys elsewhere in the network but not at this partner."""

    category: str


class ShopperProfile(_Response):
    card_number: str
    balance: int
    held: int
    tier: TierProgress | None
    points_expiring: list[ExpiringPoints]
    points_expiring_total: int
    expiring_within_days: int
    segments: list[str]
    offers: list[Offer]  # the network's and this partner's campaigns that apply now
    data_sharing: bool
    next_best_offer: NextBestOffer | None


# ---- partner insights ---------------------------------------------------------------------------


class SegmentSize(_Response):
    segment: str
    shoppers: int


class SegmentSizes(_Response):
    """Only groups of at least k_min shoppers are listed; smaller ones are counted in
    `groups_suppressed` (how many groups, never how many shoppers)."""

    k_min: int
    segments: list[SegmentSize]
    groups_suppressed: int


class CohortRow(_Response):
    cohort_month: date
    shoppers: int | None  # the cohort's size (active in its first month)
    retained: list[int | None]  # shoppers active n months later, n = 0..months-1
    suppressed: bool  # the cohort itself is smaller than k


class RetentionCohorts(_Response):
    k_min: int
    months: int
    cohorts: list[CohortRow]


class CategoryReach(_Response):
    category: str
    shoppers: int
    share_bps: int  # of the partner's consenting shoppers


class CrossPartnerActivity(_Response):
    k_min: int
    window_days: int
    consenting_shoppers: int | None
    active_elsewhere: int | None
    active_elsewhere_bps: int | None
    categories: list[CategoryReach]  # groups of at least k_min shoppers only
    groups_suppressed: int


# ---- operator analytics -------------------------------------------------------------------------


class Retention(_Response):
    """((E - N) / S) x 100: E shoppers who purchased in the period, N of them first purchased in
    it, S shoppers who had purchased before it."""

    period_start: datetime
    period_end: datetime
    shoppers_at_start: int
    shoppers_at_end: int
    new_shoppers: int
    retention_rate_bps: int | None
    retention_rate: str | None


class RepeatPurchase(_Response):
    period_start: datetime
    period_end: datetime
    purchasers: int
    repeat_purchasers: int
    repeat_purchase_rate_bps: int | None
    repeat_purchase_rate: str | None


class BasketRow(_Response):
    partner_id: int | None  # None: the whole network
    purchases: int
    spend_minor: int
    average_basket_minor: int | None  # rounded half up


class AverageBasket(_Response):
    period_start: datetime
    period_end: datetime
    rows: list[BasketRow]


class Nps(_Response):
    period_start: datetime
    period_end: datetime
    responses: int
    promoters: int
    passives: int
    detractors: int
    nps_bps: int | None  # (promoters - detractors) / responses, in hundredths of a point
    nps: str | None


class Liability(_Response):
    period_start: datetime
    period_end: datetime
    points_outstanding: int
    liability_micros: int
    breakage_micros_total: int
    points_issued: int  # in the period (earn and goodwill)
    points_expired: int  # in the period
    breakage_rate_bps: int | None  # expired / issued in the period
    breakage_rate: str | None


class PartnerPointsRow(_Response):
    partner_id: int
    points_issued: int
    points_redeemed: int
    points_issued_reversed: int
    points_redeemed_reversed: int


class PartnerPoints(_Response):
    period_start: datetime
    period_end: datetime
    rows: list[PartnerPointsRow]


class FlowCell(_Response):
    earned_partner_id: int | None  # None: issued by the network (marketing)
    burned_partner_id: int
    points: int
    issue_value_micros: int


class FlowMatrix(_Response):
    period_start: datetime
    period_end: datetime
    rows: list[FlowCell]


# ---- retention figures (issue 19) ---------------------------------------------------------------


class RetentionRateRow(_Response):
    """One partner's CRR over its own customers: ((E - N) / S) x 100; partner_id null: the
    network's (every partner's customers together)."""

    partner_id: int | None
    shoppers_at_start: int | None
    shoppers_at_end: int | None
    new_shoppers: int | None
    retention_rate_bps: int | None
    retention_rate: str | None


class RetentionRates(_Response):
    period_start: datetime
    period_end: datetime
    k_min: int | None  # set on a partner's view (counts below it are suppressed)
    rows: list[RetentionRateRow]


class LifetimeValueRow(_Response):
    """CLV = margin per purchase x purchases per shopper per period x expected lifetime in
    periods (1 / churn, churn = 1 - CRR, capped at `lifetime_periods_max`)."""

    segment: str
    shoppers_at_start: int | None
    shoppers_at_end: int | None
    new_shoppers: int | None
    purchases: int | None
    spend_minor: int | None
    retention_rate_bps: int | None
    margin_per_purchase_minor: int | None
    purchases_per_shopper_centi: int | None  # hundredths of a purchase
    expected_lifetime_periods_centi: int | None  # hundredths of a period
    lifetime_capped: bool
    lifetime_value_minor: int | None


class LifetimeValues(_Response):
    period_start: datetime
    period_end: datetime
    margin_bps: int  # the margin on spend assumed (10,000: revenue lifetime value)
    lifetime_periods_max: int
    k_min: int | None
    rows: list[LifetimeValueRow]


class AbcXyzCell(_Response):
    abc: str  # A: the shoppers making the first 80 % of value, B the next 15 %, C the rest
    xyz: str  # X: monthly spend CV <= 10 %, Y: <= 25 %, Z: above
    shoppers: int | None
    spend_minor: int | None


class AbcXyz(_Response):
    period_start: datetime
    period_end: datetime
    months: int
    k_min: int | None
    rows: list[AbcXyzCell]
