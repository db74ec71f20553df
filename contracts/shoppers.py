"""Shopper-facing wire contracts: shopper sessions, `/v1/me`, and operator identity changes.

Requests refuse unknown fields; every bound is named once here.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec

from contracts.campaigns import Offer
from contracts.challenges import Badge
from contracts.email import EmailText, LocaleText
from contracts.text import LINE_PATTERN, PROSE_PATTERN

SHOPPER_TOKEN_TTL_S_DEFAULT = 15 * 60
SHOPPER_TOKEN_TTL_S_MIN = 60
SHOPPER_TOKEN_TTL_S_MAX = 60 * 60
HISTORY_LIMIT_DEFAULT = 50
HISTORY_LIMIT_MAX = 200
NPS_COMMENT_CHARS_MAX = 2_000
REASON_CHARS_MAX = 200
EXPIRING_WINDOWS_DAYS = (30, 60, 90)

CardNumber = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{12,19}$")]
QrToken = Annotated[str, msgspec.Meta(pattern=r"^qr_[A-Za-z0-9_-]{16,64}$")]
Phone = Annotated[str, msgspec.Meta(min_length=4, max_length=32, pattern=LINE_PATTERN)]
Reason = Annotated[
    str, msgspec.Meta(min_length=1, max_length=REASON_CHARS_MAX, pattern=PROSE_PATTERN)
]
# Database keys are bigint: a larger id is a validation error, not a driver failure.
ShopperId = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
CardStatus = Literal["active", "blocked", "replaced"]


class _Request(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Base of every request body: unknown fields are refused, not ignored."""


class _Response(msgspec.Struct, kw_only=True):
    """Base of every response body."""


# ---- partner: shopper sessions ---------------------------------------------------------------


class ShopperTokenRequest(_Request):
    """A session for the shopper the partner app authenticated, by card or by app QR token
    (exactly one of them)."""

    card_number: CardNumber | None = None
    qr_token: QrToken | None = None
    ttl_s: Annotated[int, msgspec.Meta(ge=SHOPPER_TOKEN_TTL_S_MIN, le=SHOPPER_TOKEN_TTL_S_MAX)] = (
        SHOPPER_TOKEN_TTL_S_DEFAULT
    )

    def __post_init__(self) -> None:
        if (self.card_number is None) == (self.qr_token is None):
            raise ValueError("give exactly one of card_number or qr_token")


class ShopperToken(_Response):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in_s: int
    shopper_id: int


# ---- shopper: /v1/me -------------------------------------------------------------------------


class Card(_Response):
    card_number: str
    status: CardStatus
    created_at: datetime
    replaced_by: str | None = None


class Profile(_Response):
    shopper_id: int
    enrolled_at: datetime
    birth_date: date | None
    phone_linked: bool
    cards: list[Card]
    email: str | None = None  # where notices and sign-in codes go (issue 16)
    locale: str = "en"  # their language: "en" or "ru"
    # issue 19: one per challenge completed, kept (marked revoked) when a refund takes it back
    badges: list[Badge] = msgspec.field(default_factory=list)


class ProfileUpdate(_Request):
    """A merge patch: an absent field is left as it is, null clears it."""

    birth_date: date | msgspec.UnsetType | None = msgspec.UNSET
    # issue 16: where notices go and in which language ("en" or "ru")
    email: EmailText | msgspec.UnsetType | None = msgspec.UNSET
    locale: LocaleText | msgspec.UnsetType = msgspec.UNSET


class PhoneLink(_Request):
    phone: Phone


class QrTokenIssued(_Response):
    """The raw token appears here once; only its digest is stored."""

    qr_token: str


class Balance(_Response):
    balance: int
    held: int
    debt_points: int


class HistoryItem(_Response):
    entry_id: int
    kind: str
    points: int
    created_at: datetime
    partner_id: int | None
    partner_name: str | None
    partner_ref: str | None = None


class HistoryPage(_Response):
    items: list[HistoryItem]
    next_cursor: str | None


class ExpiringWindow(_Response):
    within_days: int
    points: int


class ExpiringLot(_Response):
    points: int
    expires_at: datetime
    partner_id: int | None


class Expiring(_Response):
    windows: list[ExpiringWindow]
    lots: list[ExpiringLot]


class TierProgress(_Response):
    tier: str
    multiplier_bps: int
    since: datetime | None
    review_at: datetime | None
    points_earned_12m: int
    spend_minor_12m: int
    next_tier: str | None
    points_to_next: int | None
    spend_minor_to_next: int | None


class Offers(_Response):
    items: list[Offer]


class Consent(_Response):
    data_sharing: bool
    marketing: bool
    updated_at: datetime | None


class ConsentUpdate(_Request):
    data_sharing: bool | None = None
    marketing: bool | None = None


class Referral(_Response):
    code: str


class NpsAnswer(_Request):
    score: Annotated[int, msgspec.Meta(ge=0, le=10)]
    comment: (
        Annotated[str, msgspec.Meta(max_length=NPS_COMMENT_CHARS_MAX, pattern=PROSE_PATTERN)] | None
    ) = None


class NpsRecorded(_Response):
    answer_id: int
    answered_at: datetime


class Erasure(_Response):
    shopper_id: int
    erased_at: datetime


# ---- operator: cards and merges --------------------------------------------------------------


class CardStatusChange(_Request):
    reason: Reason


class CardReplacement(_Request):
    """Replace a lost card; without `new_card_number` the network issues one."""

    reason: Reason
    new_card_number: CardNumber | None = None


class CardReplaced(_Response):
    shopper_id: int
    old_card: Card
    new_card: Card


class MergeRequest(_Request):
    survivor_shopper_id: ShopperId
    absorbed_shopper_id: ShopperId
    reason: Reason


class Merge(_Response):
    survivor_shopper_id: int
    absorbed_shopper_id: int
    points_moved: int
    lots_moved: int
    cards_moved: list[str]
    tier: str
