"""The public event catalogue: the webhook event types partners subscribe to, and their data.

The outbox (`event_outbox`) records internal events; `public_type` names the webhook type an
outbox event is published as (None: not published), and `public_data` is the `data` member of
the Standard Webhooks body `{"type", "timestamp", "data"}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

EVENT_TYPES: tuple[str, ...] = (
    "purchase.created",
    "purchase.refunded",
    "redemption.created",
    "redemption.refunded",
    "hold.captured",
    "hold.voided",
    "hold.expired",
    "statement.ready",
    "statement.finalized",
    "statement.paid",
    "statement.disputed",
    "reconciliation.completed",
    "shopper.erased",
    "points.expiring",
)

# Outbox names that differ from the public ones (the outbox kept its first names).
_PUBLIC_BY_OUTBOX_TYPE: dict[str, str] = {
    "purchase.recorded": "purchase.created",
    "redemption.recorded": "redemption.created",
}


def public_type(outbox_type: str) -> str | None:
    """The webhook type an outbox event is delivered as, or None when it is internal only."""
    name = _PUBLIC_BY_OUTBOX_TYPE.get(outbox_type, outbox_type)
    return name if name in EVENT_TYPES else None


def public_data(outbox_type: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The `data` a partner receives for an outbox event (never an internal-only member)."""
    assert public_type(outbox_type) is not None, outbox_type
    return dict(payload)
