"""Partner-facing wire contracts: operator onboarding and the signed partner API.

Requests refuse unknown fields; every bound is named once here so that clients and the
server agree on it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from contracts.email import EmailText, LocaleText
from contracts.text import LINE_PATTERN

AMOUNT_MINOR_MAX = 100_000_000_000  # 1 billion in a two-decimal currency
POINTS_MAX = 1_000_000_000
PRICE_MICROS_MAX = 1_000_000_000  # 1,000 currency units per point
EARN_POINTS_MAX = 1_000_000
LINES_MAX = 200
CATEGORY_RULES_MAX = 100
BPS_ONE = 10_000  # 1.0x in basis points
MULTIPLIER_BPS_MAX = 1_000_000  # 100x
HOLD_EXPIRES_IN_S_DEFAULT = 15 * 60
HOLD_EXPIRES_IN_S_MAX = 7 * 24 * 3600
RATE_LIMIT_PER_S_DEFAULT = 100
RATE_LIMIT_PER_S_MAX = 100_000
TRANSACTIONS_LIMIT_DEFAULT = 50
TRANSACTIONS_LIMIT_MAX = 200

PartnerRef = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[!-~]+$")]
CardNumber = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{12,19}$")]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
AmountMinor = Annotated[int, msgspec.Meta(ge=1, le=AMOUNT_MINOR_MAX)]
Points = Annotated[int, msgspec.Meta(ge=1, le=POINTS_MAX)]
PriceMicros = Annotated[int, msgspec.Meta(ge=0, le=PRICE_MICROS_MAX)]
Slug = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=LINE_PATTERN)]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=LINE_PATTERN)]


class _Request(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Base of every request body: unknown fields are refused, not ignored."""


class _Response(msgspec.Struct, kw_only=True):
    """Base of every response body."""


# ---- operator: partners, pricing, keys ------------------------------------------------------


class PricingTerms(_Request):
    issue_price_micros: PriceMicros
    redemption_price_micros: PriceMicros
    earn_points: Annotated[int, msgspec.Meta(ge=0, le=EARN_POINTS_MAX)]
    earn_spend_minor: Annotated[int, msgspec.Meta(ge=1, le=AMOUNT_MINOR_MAX)]


class PartnerCreate(PricingTerms):
    name: Name
    slug: Slug
    rate_limit_per_s: Annotated[int, msgspec.Meta(ge=1, le=RATE_LIMIT_PER_S_MAX)] = (
        RATE_LIMIT_PER_S_DEFAULT
    )


class RateLimitUpdate(_Request):
    """A partner's per-key limit (calls per second), changed by an admin."""

    rate_limit_per_s: Annotated[int, msgspec.Meta(ge=1, le=RATE_LIMIT_PER_S_MAX)]


class PricingVersionCreate(PricingTerms):
    """A new pricing version; `effective_at` defaults to now and is never in the past."""

    effective_at: datetime | None = None


class PricingVersion(_Response):
    version: int
    effective_at: datetime
    issue_price_micros: int
    redemption_price_micros: int
    earn_points: int
    earn_spend_minor: int


class Partner(_Response):
    id: int
    name: str
    slug: str
    rate_limit_per_s: int
    created_at: datetime
    pricing: list[PricingVersion]


class ApiKeyCreated(_Response):
    """The secret appears here once and never again."""

    key_id: str
    partner_id: int
    secret: str
    created_at: datetime


class ApiKey(_Response):
    key_id: str
    partner_id: int
    created_at: datetime
    revoked_at: datetime | None = None


# ---- partner API -----------------------------------------------------------------------------


class Line(_Request):
    sku: Label
    amount_minor: Annotated[int, msgspec.Meta(ge=0, le=AMOUNT_MINOR_MAX)]
    quantity: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 1
    category: Label | None = None


ReferralCode = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9]{4,16}$")]


class EnrollRequest(_Request):
    """Enrollment; `referral_code` is the code of the friend who referred this shopper."""

    card_number: CardNumber | None = None
    referral_code: ReferralCode | None = None
    # where the shopper's notices go, and in which language ("en" or "ru"; issue 16)
    email: EmailText | None = None
    locale: LocaleText | None = None


class Enrollment(_Response):
    shopper_id: int
    card_number: str


class PurchaseRequest(_Request):
    partner_ref: PartnerRef
    card_number: CardNumber
    amount_minor: AmountMinor
    currency: Currency
    store_id: Label | None = None
    lines: Annotated[list[Line], msgspec.Meta(max_length=LINES_MAX)] | None = None


BreakdownKind = Literal["base", "tier_bonus", "campaign", "referral", "membership"]
Payer = Literal["partner", "network"]


class BreakdownItem(_Response):
    """One component of the points a purchase earns; the items sum to `points_earned`.

    `paid_by`: "partner" items are issued at the partner's issue price in the purchase's earn
    entry; "network" items (network campaigns, referral bonuses, a paid membership's extra
    points) are paid by network marketing.
    """

    kind: BreakdownKind
    points: int
    paid_by: Payer
    campaign_id: int | None = None
    name: str | None = None


class PurchaseResult(_Response):
    transaction_id: str
    points_earned: int  # every point this purchase credited to the shopper: sum of `breakdown`
    balance: int
    breakdown: list[BreakdownItem] = msgspec.field(default_factory=list)


class RedemptionRequest(_Request):
    partner_ref: PartnerRef
    card_number: CardNumber
    points: Points


class RedemptionResult(_Response):
    transaction_id: str
    points_redeemed: int
    value_minor: int
    balance: int


class HoldRequest(_Request):
    partner_ref: PartnerRef
    card_number: CardNumber
    points: Points
    expires_in_s: Annotated[int, msgspec.Meta(ge=1, le=HOLD_EXPIRES_IN_S_MAX)] = (
        HOLD_EXPIRES_IN_S_DEFAULT
    )


class CaptureRequest(_Request):
    points: Points | None = None


class VoidRequest(_Request):
    pass


HoldStatus = Literal["open", "captured", "voided"]


class HoldResult(_Response):
    hold_id: str
    status: HoldStatus
    points: int
    points_captured: int
    value_minor: int
    expires_at: datetime
    balance: int
    held: int


class RefundRequest(_Request):
    """Refund of a purchase (by `amount_minor` or `points`) or a redemption (by `points`).

    Neither given refunds whatever of the original is left.
    """

    partner_ref: PartnerRef
    original_partner_ref: PartnerRef
    amount_minor: AmountMinor | None = None
    points: Points | None = None


class RefundResult(_Response):
    transaction_id: str
    original_transaction_id: str
    points_refunded: int
    amount_minor: int | None
    balance: int
    # Network campaign points of the purchase taken back with it (paid by the network, so
    # not in points_refunded, which is what the partner's statement moves).
    network_points_refunded: int = 0


class QuoteRequest(_Request):
    amount_minor: AmountMinor
    card_number: CardNumber | None = None
    lines: Annotated[list[Line], msgspec.Meta(max_length=LINES_MAX)] | None = None


class Quote(_Response):
    """What a purchase would earn now (`points` = sum of `breakdown`), posting nothing.

    Campaign items are shown before budgets and caps; the purchase may award less.
    """

    points: int
    pricing_version: int
    balance: int | None = None
    breakdown: list[BreakdownItem] = msgspec.field(default_factory=list)


# ---- purchase batches (end-of-day files from offline stores) ---------------------------------

MAX_BATCH_ITEMS = 1_000  # purchases per batch call; more answers `batch_too_large`


class PurchaseBatchRequest(_Request):
    """Up to MAX_BATCH_ITEMS purchases, each with its own `partner_ref`, posted item by item:
    a refused item never fails its neighbours. The count is checked by the service (which
    answers `batch_too_large`); the body size is bounded by the route."""

    items: Annotated[list[PurchaseRequest], msgspec.Meta(min_length=1)]


BatchItemStatus = Literal["created", "rejected", "duplicate"]


class BatchItemError(_Response):
    code: str
    detail: str


class BatchItemResult(_Response, omit_defaults=True):
    """One item's outcome, in request order. `created`: posted now (`transaction_id`,
    `points_earned`, `breakdown`); `duplicate`: its `partner_ref` already names this purchase
    (same card and amount), recorded by an earlier call or item (`transaction_id` of that
    original, nothing posted); `rejected`: nothing posted (`error`)."""

    index: int
    partner_ref: str
    status: BatchItemStatus
    transaction_id: str | None = None
    points_earned: int | None = None
    breakdown: list[BreakdownItem] | None = None
    error: BatchItemError | None = None


class PurchaseBatchResult(_Response):
    results: list[BatchItemResult]
    created: int
    rejected: int
    duplicate: int


# ---- earn rules ------------------------------------------------------------------------------

Category = Label
MultiplierBps = Annotated[int, msgspec.Meta(ge=0, le=MULTIPLIER_BPS_MAX)]


class CategoryRule(_Request):
    """A category's multiplier on the base rate (10_000 = 1.0x), or its exclusion."""

    category: Category
    multiplier_bps: MultiplierBps = BPS_ONE
    excluded: bool = False


class EarnRulesUpdate(_Request):
    """The partner's whole earn rule set, replacing the previous one."""

    min_basket_minor: Annotated[int, msgspec.Meta(ge=0, le=AMOUNT_MINOR_MAX)] = 0
    categories: Annotated[list[CategoryRule], msgspec.Meta(max_length=CATEGORY_RULES_MAX)] = (
        msgspec.field(default_factory=list)
    )


class CategoryRuleView(_Response):
    category: str
    multiplier_bps: int
    excluded: bool


class EarnRules(_Response):
    partner_id: int
    min_basket_minor: int
    categories: list[CategoryRuleView]
    updated_at: datetime | None = None


class ExpiringPoints(_Response):
    points: int
    expires_at: datetime


class ShopperView(_Response):
    shopper_id: int
    card_number: str
    balance: int
    held: int
    expiring: list[ExpiringPoints]
    tier: str


TransactionKind = Literal["purchase", "redemption", "hold", "refund"]


class Transaction(_Response):
    transaction_id: str
    kind: TransactionKind
    partner_ref: str
    card_number: str
    points: int
    status: str
    created_at: datetime
    amount_minor: int | None = None
    value_minor: int | None = None
    original_transaction_id: str | None = None


class TransactionPage(_Response):
    items: list[Transaction]
    next_cursor: str | None = None


# ---- program settings (operator) ---------------------------------------------------------------

POINTS_LIFETIME_MONTHS_MIN = 1
POINTS_LIFETIME_MONTHS_MAX = 120


class PointsLifetimeUpdate(_Request):
    """How long points earned from now on stay valid, in months from the earn (1 to 120;
    checked by the service, which answers `points_lifetime_invalid`)."""

    months: int


class PointsLifetime(_Response):
    months: int
    updated_at: datetime | None = None
    updated_by: str | None = None
