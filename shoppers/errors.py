"""Shopper domain errors; the gateway maps each code to an HTTP status."""

from __future__ import annotations

from typing import Any

from contracts.errors import DomainError, ErrorCode


class CardUnknown(DomainError):
    code = ErrorCode.CARD_UNKNOWN

    def __init__(self) -> None:
        super().__init__("no shopper holds this card number")


class CardNumberInvalid(DomainError):
    code = ErrorCode.CARD_NUMBER_INVALID

    def __init__(self) -> None:
        super().__init__("the card number fails its Luhn check digit")


class CardNumberTaken(DomainError):
    code = ErrorCode.CARD_NUMBER_TAKEN

    def __init__(self) -> None:
        super().__init__("this card number already belongs to a shopper")

    def details(self) -> dict[str, Any]:
        return {}


class CardBlocked(DomainError):
    """A blocked or replaced card: every partner operation refuses it."""

    code = ErrorCode.CARD_BLOCKED

    def __init__(self, status: str) -> None:
        super().__init__(f"this card is {status} and cannot be used")
        self.status = status

    def details(self) -> dict[str, Any]:
        return {"card_status": self.status}


class CardNotBlocked(DomainError):
    code = ErrorCode.CARD_STATE_CONFLICT

    def __init__(self, status: str) -> None:
        super().__init__(f"the card is {status}; this change does not apply to it")
        self.status = status

    def details(self) -> dict[str, Any]:
        return {"card_status": self.status}


class ShopperNotFound(DomainError):
    code = ErrorCode.NOT_FOUND

    def __init__(self) -> None:
        super().__init__("shopper not found")


class ShopperErased(DomainError):
    code = ErrorCode.SHOPPER_ERASED

    def __init__(self) -> None:
        super().__init__("this shopper's personal data was erased")


class MergeRefused(DomainError):
    code = ErrorCode.MERGE_REFUSED

    def __init__(self, reason: str) -> None:
        super().__init__(f"the shoppers cannot be merged: {reason}")
        self.reason = reason


class PhoneInvalid(DomainError):
    code = ErrorCode.PHONE_INVALID

    def __init__(self) -> None:
        super().__init__("the phone number must be in E.164 form, e.g. +4915123456789")


class IdentifierTaken(DomainError):
    code = ErrorCode.IDENTIFIER_TAKEN

    def __init__(self, kind: str) -> None:
        super().__init__(f"this {kind} already belongs to another shopper")


class ShopperLedgerRefused(DomainError):
    """A ledger refusal during a shopper change, carried with the ledger's own code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class HistoryCursorInvalid(DomainError):
    code = ErrorCode.CURSOR_INVALID

    def __init__(self) -> None:
        super().__init__("the cursor is not one this API returned")
