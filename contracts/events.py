"""The public event catalogue: the webhook event types partners subscribe to, and their data.

The outbox (`event_outbox`) records internal events; `public_type` names the webhook type an
outbox event is published as (None: not published), and `public_data` is the `data` member of
the Standard Webhooks body `{"type", "timestamp", "data"}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

import msgspec

from contracts.settlement import Payer, ReconciliationTotals, StatementState

CATALOGUE_PATH = "/v1/event-types"  # where the catalogue is served (no authentication)

# RFC 3339, UTC (msgspec's schema leaves the format out; the catalogue states it).
Timestamp = Annotated[datetime, msgspec.Meta(extra_json_schema={"format": "date-time"})]


class _Data(msgspec.Struct, kw_only=True):
    """Base of every event's `data`: ids, references and amounts, never a card number or a
    shopper's personal data. `shopper_id` is the id the enrollment answered."""


class _Transaction(_Data):
    transaction_id: str
    partner_ref: str
    shopper_id: int
    points: int


class PurchaseCreated(_Transaction):
    amount_minor: int


class RedemptionCreated(_Transaction):
    value_minor: int


class Refunded(_Transaction):
    """`points` is what the refund reversed; amount_minor (a purchase's) or value_minor (a
    redemption's) what it returned."""

    original_transaction_id: str
    original_partner_ref: str
    amount_minor: int | None
    value_minor: int | None


class HoldSettled(_Transaction):
    """`points` is what was held; `points_captured` what the capture took (0 when voided)."""

    points_captured: int
    value_minor: int | None


class HoldExpired(_Transaction):
    expired_at: Timestamp


class StatementChanged(_Data):
    statement_id: int
    period_id: int
    period_start: Timestamp | None
    period_end: Timestamp
    currency: str
    state: StatementState
    closing_balance_micros: int
    payment_due_micros: int
    payer: Payer
    payment_minor: int
    state_reason: str | None = None


class ReconciliationCompleted(_Data):
    reconciliation_id: int
    period_start: Timestamp
    period_end: Timestamp
    source_format: str
    totals: ReconciliationTotals


class ShopperErased(_Data):
    shopper_id: int


class PointsExpiring(_Data):
    shopper_id: int
    lot_id: int
    points: int
    expires_at: Timestamp
    issued_by_partner_id: int | None
    days_before: int | None = None  # which notice this is (30, 7: COALITION_EXPIRY_NOTICE_DAYS)


class MembershipChanged(_Data):
    """A membership you sold: sold, renewed (a new period's fee is due from you) or
    cancelled (refund_minor returned to the shopper at your till)."""

    membership_id: int
    plan_id: int
    shopper_id: int
    partner_ref: str
    status: str
    period_no: int
    period_end: Timestamp
    price_minor: int | None = None
    refund_minor: int | None = None
    points_reversed: int | None = None
    points_debt: int | None = None


class ChallengeAward(_Data):
    """A shopper completed one of your challenges (points granted, funded by you), or a refund
    took their progress below the goal and the award was clawed back. `grant` counts the times
    this shopper was granted this challenge (a re-completion after a claw-back is grant 2)."""

    challenge_id: int
    shopper_id: int
    points: int
    grant: int
    kind: str


class EventType(msgspec.Struct, kw_only=True, frozen=True):
    type: str
    description: str
    schema: dict[str, Any]  # JSON Schema (2020-12) of the event's `data`


class EventCatalogue(msgspec.Struct, kw_only=True, frozen=True):
    items: list[EventType]


# The public types, what each says, and the shape of its data. Order is the catalogue's.
_TYPES: dict[str, tuple[type[_Data], str]] = {
    "purchase.created": (PurchaseCreated, "A purchase earned points at your store."),
    "purchase.refunded": (Refunded, "(Part of) a purchase of yours was refunded."),
    "redemption.created": (RedemptionCreated, "Points were redeemed at your store."),
    "redemption.refunded": (Refunded, "(Part of) a redemption or a captured hold was refunded."),
    "hold.captured": (HoldSettled, "A hold of yours was captured."),
    "hold.voided": (HoldSettled, "A hold of yours was voided; its points are back."),
    "hold.expired": (HoldExpired, "A hold of yours expired uncaptured; its points are back."),
    "statement.ready": (StatementChanged, "Your statement for a closed period is ready."),
    "statement.finalized": (StatementChanged, "Your statement was finalized."),
    "statement.paid": (StatementChanged, "Your statement was marked paid."),
    "statement.disputed": (StatementChanged, "Your statement was disputed (see state_reason)."),
    "reconciliation.completed": (
        ReconciliationCompleted,
        "A reconciliation you uploaded was compared with the ledger.",
    ),
    "shopper.erased": (
        ShopperErased,
        "A shopper you transacted with was erased: delete your copies of their data.",
    ),
    "points.expiring": (
        PointsExpiring,
        "Points of a shopper who consented to you will expire soon.",
    ),
    "membership.sold": (MembershipChanged, "You sold a paid membership."),
    "membership.renewed": (
        MembershipChanged,
        "A membership you sold renewed for a new term; its fee is on your statement.",
    ),
    "membership.cancelled": (
        MembershipChanged,
        "A membership you sold was cancelled; refund the prorated fee (refund_minor).",
    ),
    "challenge.completed": (
        ChallengeAward,
        "A shopper completed a challenge of yours; its reward points were granted.",
    ),
    "challenge.award_revoked": (
        ChallengeAward,
        "A refund took a shopper below a challenge's goal; the reward was clawed back.",
    ),
}
EVENT_TYPES: tuple[str, ...] = tuple(_TYPES)

# Outbox names that differ from the public ones (the outbox kept its first names).
_PUBLIC_BY_OUTBOX_TYPE: dict[str, str] = {
    "purchase.recorded": "purchase.created",
    "redemption.recorded": "redemption.created",
}


def public_type(outbox_type: str) -> str | None:
    """The webhook type an outbox event is delivered as, or None when it is internal only."""
    name = _PUBLIC_BY_OUTBOX_TYPE.get(outbox_type, outbox_type)
    return name if name in _TYPES else None


def public_data(outbox_type: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """The `data` a partner receives for an outbox event: exactly its type's schema (members
    the outbox keeps for itself are dropped; a payload missing a member raises)."""
    name = public_type(outbox_type)
    assert name is not None, outbox_type
    data = msgspec.convert(dict(payload), _TYPES[name][0], strict=False)
    built: dict[str, Any] = msgspec.to_builtins(data)
    return built


def catalogue() -> EventCatalogue:
    """Every public type with its JSON Schema, as served at CATALOGUE_PATH."""
    return EventCatalogue(
        items=[
            EventType(type=name, description=text, schema=_schema(struct))
            for name, (struct, text) in _TYPES.items()
        ]
    )


def _schema(struct: type[_Data]) -> dict[str, Any]:
    # One self-contained document per type: the definitions it refers to travel with it.
    (ref,), components = msgspec.json.schema_components([struct], ref_template="#/$defs/{name}")
    name = ref["$ref"].rsplit("/", 1)[1]
    schema: dict[str, Any] = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    schema.update(components.pop(name))
    if components:
        schema["$defs"] = components
    return schema


if __name__ == "__main__":  # python -m contracts.events > docs/event-catalogue.json
    import sys

    sys.stdout.write(msgspec.json.format(msgspec.json.encode(catalogue()), indent=2).decode())
    sys.stdout.write("\n")
