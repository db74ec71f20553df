"""Stable machine error codes and the RFC 9457 problem document.

A code, once published, keeps its meaning: clients branch on it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import msgspec

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://coalition.example/problems/"


class ErrorCode(StrEnum):
    # generic HTTP
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    VALIDATION_FAILED = "validation_failed"
    MALFORMED_JSON = "malformed_json"
    BODY_TOO_LARGE = "body_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
    INTERNAL_ERROR = "internal_error"
    SERVICE_UNAVAILABLE = "service_unavailable"
    DATABASE_UNAVAILABLE = "database_unavailable"  # unreachable or restarting: retry later
    DATABASE_BUSY = "database_busy"  # no connection free, or a statement or lock timed out
    # tokens
    TOKEN_INVALID = "token_invalid"  # noqa: S105 (an error code, not a secret)
    TOKEN_EXPIRED = "token_expired"  # noqa: S105
    ROLE_REQUIRED = "role_required"
    # partner request signatures (RFC 9421)
    SIGNATURE_INVALID = "signature_invalid"
    SIGNATURE_EXPIRED = "signature_expired"
    NONCE_REUSED = "nonce_reused"
    DIGEST_MISMATCH = "digest_mismatch"
    KEY_UNKNOWN = "key_unknown"
    KEY_REVOKED = "key_revoked"
    # idempotency and references
    IDEMPOTENCY_KEY_REQUIRED = "idempotency_key_required"
    IDEMPOTENCY_MISMATCH = "idempotency_mismatch"
    IDEMPOTENCY_IN_PROGRESS = "idempotency_in_progress"
    PARTNER_REF_CONFLICT = "partner_ref_conflict"
    # partners and shoppers
    PARTNER_SLUG_TAKEN = "partner_slug_taken"
    PRICING_NOT_EFFECTIVE = "pricing_not_effective"
    PRICING_EFFECTIVE_IN_PAST = "pricing_effective_in_past"
    PRICING_EFFECTIVE_TAKEN = "pricing_effective_taken"  # a version already starts then
    KEY_LIMIT_REACHED = "key_limit_reached"
    CARD_UNKNOWN = "card_unknown"
    CARD_NUMBER_INVALID = "card_number_invalid"
    CARD_NUMBER_TAKEN = "card_number_taken"
    CURRENCY_UNSUPPORTED = "currency_unsupported"
    INSUFFICIENT_POINTS = "insufficient_points"
    HOLD_NOT_OPEN = "hold_not_open"
    CAPTURE_EXCEEDS_HOLD = "capture_exceeds_hold"
    REFUND_EXCEEDS_ORIGINAL = "refund_exceeds_original"
    REFUND_NOT_APPLICABLE = "refund_not_applicable"
    CURSOR_INVALID = "cursor_invalid"
    # program rules: earn rules, campaigns, referrals (issue 6)
    LINES_EXCEED_AMOUNT = "lines_exceed_amount"
    CAMPAIGN_INVALID = "campaign_invalid"
    REFERRAL_CODE_UNKNOWN = "referral_code_unknown"
    REFERRAL_NOT_ALLOWED = "referral_not_allowed"
    # shopper identity and sessions (issue 6)
    CARD_BLOCKED = "card_blocked"
    CARD_STATE_CONFLICT = "card_state_conflict"
    SHOPPER_ERASED = "shopper_erased"
    MERGE_REFUSED = "merge_refused"
    PHONE_INVALID = "phone_invalid"
    IDENTIFIER_TAKEN = "identifier_taken"
    POINTS_LIFETIME_INVALID = "points_lifetime_invalid"
    # personalization and analytics (issue 8)
    ANALYTICS_PERIOD_INVALID = "analytics_period_invalid"
    # purchase batches (issue 7)
    BATCH_TOO_LARGE = "batch_too_large"
    # webhooks (issue 16)
    WEBHOOK_URL_INVALID = "webhook_url_invalid"
    WEBHOOK_URL_REFUSED = "webhook_url_refused"
    WEBHOOK_EVENT_TYPE_UNKNOWN = "webhook_event_type_unknown"
    WEBHOOK_ENDPOINT_LIMIT_REACHED = "webhook_endpoint_limit_reached"
    WEBHOOK_ENDPOINT_DISABLED = "webhook_endpoint_disabled"
    WEBHOOK_DELIVERY_SENDING = "webhook_delivery_sending"
    WEBHOOK_REPLAY_SINCE_INVALID = "webhook_replay_since_invalid"
    # email (issue 16)
    EMAIL_INVALID = "email_invalid"
    LOCALE_UNSUPPORTED = "locale_unsupported"
    UNSUBSCRIBE_TOKEN_INVALID = "unsubscribe_token_invalid"  # noqa: S105 (a code, not a secret)
    # paid membership (issue 19)
    MEMBERSHIP_PLAN_INVALID = "membership_plan_invalid"
    MEMBERSHIP_PLAN_NOT_SELLABLE = "membership_plan_not_sellable"
    MEMBERSHIP_PRICE_MISMATCH = "membership_price_mismatch"
    MEMBERSHIP_ACTIVE = "membership_active"
    MEMBERSHIP_NOT_ACTIVE = "membership_not_active"
    # challenges and badges (issue 19)
    CHALLENGE_INVALID = "challenge_invalid"


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An RFC 9457 problem document with Coalition's extension members."""

    type: str
    title: str
    status: int
    code: str
    detail: str = ""
    instance: str | None = None
    request_id: str | None = None
    errors: list[dict[str, str]] | None = None
    # members some codes add (domain `details()`): what a client needs to act on the refusal
    available: int | None = None
    requested: int | None = None
    held: int | None = None
    remaining: int | None = None
    unit: str | None = None
    partner_ref: str | None = None
    hold_status: str | None = None
    currency_expected: str | None = None
    active_keys_max: int | None = None
    card_status: str | None = None
    role: str | None = None
    address_class: str | None = None
    endpoints_max: int | None = None


def problem_type(code: str) -> str:
    return PROBLEM_TYPE_BASE + code


class DomainError(Exception):
    """Base for business errors raised below the gateway; subclasses set a stable `code`.

    The gateway decides the HTTP status (gateway/errors.py); `details()` adds problem members.
    """

    code: str = "domain_error"

    def details(self) -> dict[str, Any]:
        return {}
