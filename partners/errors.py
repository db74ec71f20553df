"""Partner domain errors; the gateway maps each code to an HTTP status (gateway/errors.py)."""

from __future__ import annotations

from typing import Any

from contracts.errors import DomainError, ErrorCode


class NotFound(DomainError):
    """A partner-scoped resource that does not exist for this caller (another tenant's too)."""

    code = ErrorCode.NOT_FOUND

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} not found")


class SlugTaken(DomainError):
    code = ErrorCode.PARTNER_SLUG_TAKEN

    def __init__(self, slug: str) -> None:
        super().__init__(f"a partner with slug {slug!r} exists")


class PricingEffectiveInPast(DomainError):
    code = ErrorCode.PRICING_EFFECTIVE_IN_PAST

    def __init__(self) -> None:
        super().__init__("a pricing version takes effect now or later, never in the past")


class PricingEffectiveTaken(DomainError):
    """Two versions of one partner never start at the same moment (which one would apply?)."""

    code = ErrorCode.PRICING_EFFECTIVE_TAKEN

    def __init__(self, version: int) -> None:
        self.version = version
        super().__init__(f"pricing version {version} already takes effect at that moment")

    def details(self) -> dict[str, Any]:
        return {"version": self.version}


class PricingNotEffective(DomainError):
    code = ErrorCode.PRICING_NOT_EFFECTIVE

    def __init__(self) -> None:
        super().__init__("the partner has no pricing in effect yet")


class KeyLimitReached(DomainError):
    code = ErrorCode.KEY_LIMIT_REACHED

    def __init__(self, active_keys_max: int) -> None:
        self.active_keys_max = active_keys_max
        super().__init__(
            f"a partner has at most {active_keys_max} active keys: revoke one before adding one"
        )

    def details(self) -> dict[str, Any]:
        return {"active_keys_max": self.active_keys_max}


class PartnerRefConflict(DomainError):
    code = ErrorCode.PARTNER_REF_CONFLICT

    def __init__(self, partner_ref: str) -> None:
        self.partner_ref = partner_ref
        super().__init__(
            f"partner_ref {partner_ref!r} was already used by another request of this partner"
        )

    def details(self) -> dict[str, Any]:
        return {"partner_ref": self.partner_ref}


class CurrencyUnsupported(DomainError):
    code = ErrorCode.CURRENCY_UNSUPPORTED

    def __init__(self, currency: str, expected: str) -> None:
        self.expected = expected
        super().__init__(f"currency {currency} is not the network's currency {expected}")

    def details(self) -> dict[str, Any]:
        return {"currency_expected": self.expected}


class RefundNotApplicable(DomainError):
    code = ErrorCode.REFUND_NOT_APPLICABLE

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


class RefundExceedsOriginal(DomainError):
    code = ErrorCode.REFUND_EXCEEDS_ORIGINAL

    def __init__(self, *, remaining: int, unit: str) -> None:
        self.remaining = remaining
        self.unit = unit
        super().__init__(f"the refund exceeds what is left of the original ({remaining} {unit})")

    def details(self) -> dict[str, Any]:
        return {"remaining": self.remaining, "unit": self.unit}


class HoldNotOpen(DomainError):
    code = ErrorCode.HOLD_NOT_OPEN

    def __init__(self, status: str) -> None:
        self.status = status
        super().__init__(f"the hold is {status}")

    def details(self) -> dict[str, Any]:
        return {"hold_status": self.status}


class CursorInvalid(DomainError):
    code = ErrorCode.CURSOR_INVALID

    def __init__(self) -> None:
        super().__init__("the cursor is not one this service issued")


class LedgerRefused(DomainError):
    """A ledger domain error, carried to the gateway with the ledger's own stable code."""

    def __init__(self, code: str, message: str, fields: dict[str, Any]) -> None:
        super().__init__(message)
        self.code = code
        self.fields = fields

    def details(self) -> dict[str, Any]:
        return self.fields


class LinesExceedAmount(DomainError):
    code = ErrorCode.LINES_EXCEED_AMOUNT

    def __init__(self, *, lines_minor: int, amount_minor: int) -> None:
        super().__init__(
            f"the basket lines sum to {lines_minor}, more than the purchase amount {amount_minor}"
        )


class CampaignInvalid(DomainError):
    code = ErrorCode.CAMPAIGN_INVALID

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


class RulesInvalid(DomainError):
    code = ErrorCode.VALIDATION_FAILED

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


class MembershipPlanInvalid(DomainError):
    code = ErrorCode.MEMBERSHIP_PLAN_INVALID

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


class MembershipPlanNotSellable(DomainError):
    code = ErrorCode.MEMBERSHIP_PLAN_NOT_SELLABLE

    def __init__(self, plan_id: int) -> None:
        super().__init__(f"membership plan {plan_id} is retired or replaced by a newer version")


class MembershipPriceMismatch(DomainError):
    code = ErrorCode.MEMBERSHIP_PRICE_MISMATCH

    def __init__(self, *, price_minor: int, collected_minor: int) -> None:
        super().__init__(
            f"the plan costs {price_minor} (minor units), the sale says {collected_minor}"
        )


class MembershipActive(DomainError):
    code = ErrorCode.MEMBERSHIP_ACTIVE

    def __init__(self) -> None:
        super().__init__("the shopper already has an active membership")


class MembershipNotActive(DomainError):
    code = ErrorCode.MEMBERSHIP_NOT_ACTIVE

    def __init__(self, status: str) -> None:
        super().__init__(f"the membership is {status}, not active")
