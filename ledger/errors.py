"""Domain errors of the ledger, each with a stable snake_case `code`.

The SQL functions raise SQLSTATE CL001 with MESSAGE = the code and DETAIL = a JSON object;
`from_postgres` turns that into the matching exception, in this one place.
"""

from __future__ import annotations

from typing import Any, ClassVar

import asyncpg
import msgspec

LEDGER_SQLSTATE = "CL001"


class LedgerError(Exception):
    """Base of every ledger domain error."""

    code: ClassVar[str] = "ledger_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)


class InvalidArgument(LedgerError):
    code = "invalid_argument"

    def __init__(self, *, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class InsufficientPoints(LedgerError):
    code = "insufficient_points"

    def __init__(self, *, available: int, requested: int) -> None:
        self.available = available
        self.requested = requested
        super().__init__(f"{requested} points requested, {available} available")


class IdempotencyConflict(LedgerError):
    code = "idempotency_conflict"

    def __init__(self, *, idempotency_key: str, fields: tuple[str, ...]) -> None:
        self.idempotency_key = idempotency_key
        self.fields = fields
        super().__init__(
            f"idempotency key {idempotency_key!r} was used with different {', '.join(fields)}"
        )


class HoldNotFound(LedgerError):
    code = "hold_not_found"

    def __init__(self, *, hold_id: int) -> None:
        self.hold_id = hold_id
        super().__init__(f"hold {hold_id} not found")


class HoldNotOpen(LedgerError):
    code = "hold_not_open"

    def __init__(self, *, hold_id: int, state: str) -> None:
        self.hold_id = hold_id
        self.state = state
        super().__init__(f"hold {hold_id} is {state}")


class CaptureExceedsHold(LedgerError):
    code = "capture_exceeds_hold"

    def __init__(self, *, hold_id: int, held: int, requested: int) -> None:
        self.hold_id = hold_id
        self.held = held
        self.requested = requested
        super().__init__(f"capture of {requested} points exceeds hold {hold_id} of {held}")


class EntryNotFound(LedgerError):
    code = "entry_not_found"

    def __init__(self, *, entry_id: int) -> None:
        self.entry_id = entry_id
        super().__init__(f"entry {entry_id} not found")


class EntryNotRefundable(LedgerError):
    code = "entry_not_refundable"

    def __init__(self, *, entry_id: int, kind: str) -> None:
        self.entry_id = entry_id
        self.kind = kind
        super().__init__(f"entry {entry_id} is a {kind}, which this refund cannot reverse")


class RefundExceedsOriginal(LedgerError):
    code = "refund_exceeds_original"

    def __init__(
        self, *, original_entry_id: int, original_points: int, refunded_points: int, requested: int
    ) -> None:
        self.original_entry_id = original_entry_id
        self.original_points = original_points
        self.refunded_points = refunded_points
        self.requested = requested
        super().__init__(
            f"refund of {requested} points on entry {original_entry_id}: {refunded_points} of "
            f"{original_points} already refunded"
        )


class HoldsOpen(LedgerError):
    code = "holds_open"

    def __init__(self, *, shopper_id: int, held: int) -> None:
        self.shopper_id = shopper_id
        self.held = held
        super().__init__(f"shopper {shopper_id} has {held} points in open holds")


class ShopperMerged(LedgerError):
    code = "shopper_merged"

    def __init__(self, *, shopper_id: int, merged_into: int) -> None:
        self.shopper_id = shopper_id
        self.merged_into = merged_into
        super().__init__(f"shopper {shopper_id} was merged into {merged_into}")


class JournalAppendOnly(LedgerError):
    """An UPDATE, DELETE or TRUNCATE reached the journal: always a bug or an attack."""

    code = "journal_append_only"

    def __init__(self, *, table: str, operation: str) -> None:
        self.table = table
        self.operation = operation
        super().__init__(f"{operation} on ledger.{table} refused: the journal is append-only")


class LedgerInconsistent(LedgerError):
    """The database found its own state contradictory: a bug, never a normal outcome."""

    code = "ledger_inconsistent"

    def __init__(self, *, detail: dict[str, Any]) -> None:
        self.detail = detail
        super().__init__(f"ledger inconsistent: {detail}")


_FROM_DETAIL: dict[str, type[LedgerError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        InsufficientPoints,
        IdempotencyConflict,
        HoldNotFound,
        HoldNotOpen,
        CaptureExceedsHold,
        EntryNotFound,
        EntryNotRefundable,
        RefundExceedsOriginal,
        HoldsOpen,
        ShopperMerged,
        JournalAppendOnly,
    )
}


def from_postgres(exc: asyncpg.PostgresError) -> LedgerError | None:
    """The domain error a ledger SQL function raised, or None for any other database error."""
    if getattr(exc, "sqlstate", None) != LEDGER_SQLSTATE:
        return None
    code = str(getattr(exc, "message", ""))
    raw = getattr(exc, "detail", None) or "{}"
    detail: dict[str, Any] = msgspec.json.decode(raw)
    cls = _FROM_DETAIL.get(code)
    if cls is None:
        return LedgerInconsistent(detail={"code": code, **detail})
    if cls is IdempotencyConflict:
        return IdempotencyConflict(
            idempotency_key=detail["idempotency_key"], fields=tuple(detail["fields"])
        )
    return cls(**detail)
