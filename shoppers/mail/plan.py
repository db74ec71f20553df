"""Which messages an outbox event makes, and whether each recipient may get one now.

An event makes one message per recipient, each named by (recipient, reason, subject key), the
key of the sent-once ledger:

| event             | recipient                   | reason            | subject key              |
|-------------------|-----------------------------|-------------------|--------------------------|
| points.expiring   | the shopper                 | points_expiring   | lot:<root lot>:<days>    |
| tier.changed      | the shopper                 | tier_changed      | tier:<to>:<changed_at>   |
| referral.rewarded | the friend; the referrer    | referral_rewarded | referral:<friend>:<role> |
| statement.ready   | the finance contact         | statement_ready   | statement:<id>           |
| membership.renewal_due | the shopper            | membership_renewal | membership:<id>:<period> |

A shopper gets notices only with an address, not erased, and with marketing consent
(`shopper_consents.marketing`, "offers and campaigns by message", the one consent to be
messaged that the schema has; no row means no consent). A one-click unsubscribe withdraws
that consent. Sign-in codes are transactional and need only the address (sign_in.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from infra.db import Conn

__all__ = ["Planned", "Recipient", "plan", "recipient"]

RecipientKind = Literal["shopper", "partner"]

SHOPPER_RECIPIENT = """
SELECT s.id, s.erased_at IS NOT NULL AS erased, c.email, coalesce(c.locale, 'en') AS locale,
       coalesce(k.marketing, false) AS consented
FROM shoppers s
LEFT JOIN shopper_contacts c ON c.shopper_id = s.id
LEFT JOIN shopper_consents k ON k.shopper_id = s.id
WHERE s.id = (SELECT coalesce(merged_into_id, id) FROM shoppers WHERE id = $1)
"""

PARTNER_RECIPIENT = """
SELECT p.id, p.name, f.email, coalesce(f.locale, 'en') AS locale
FROM partners p LEFT JOIN partner_finance_contacts f ON f.partner_id = p.id
WHERE p.id = $1
"""


@dataclass(frozen=True)
class Planned:
    recipient_kind: RecipientKind
    recipient_id: int
    reason: str
    subject_key: str
    context: dict[str, Any]

    @property
    def wants_consent(self) -> bool:
        # sign-in codes are transactional: no consent, no unsubscribe link
        return self.recipient_kind == "shopper" and self.reason != "sign_in_code"


@dataclass(frozen=True)
class Recipient:
    """Where a message goes now, or why it does not (`refused`: a metric outcome)."""

    email: str | None
    locale: str
    shopper_id: int | None  # the live shopper (after merges), for the unsubscribe link
    refused: str | None
    extra: dict[str, Any]


def plan(event_type: str, partner_id: int | None, payload_text: str) -> list[Planned]:
    payload: dict[str, Any] = json.loads(payload_text)
    if event_type == "points.expiring":
        return [_expiring(payload)]
    if event_type == "tier.changed":
        return [_tier(payload)]
    if event_type == "referral.rewarded":
        return _referral(payload)
    if event_type == "statement.ready":
        assert partner_id is not None, "a statement event names its partner"
        return [_statement(partner_id, payload)]
    if event_type == "membership.renewal_due":
        return [_membership_renewal(payload)]
    raise AssertionError(f"mail.queue holds only the five mailed types, got {event_type}")


def _membership_renewal(payload: dict[str, Any]) -> Planned:
    return Planned(
        "shopper",
        int(payload["shopper_id"]),
        "membership_renewal",
        f"membership:{payload['membership_id']}:{payload['period_no']}",
        {
            "plan_name": payload["plan_name"],
            "price_minor": int(payload["price_minor"]),
            "currency": payload["currency"],
            "renews_at": datetime.fromisoformat(payload["renews_at"]),
        },
    )


def _expiring(payload: dict[str, Any]) -> Planned:
    # Events recorded before the 7-day notice existed name neither: they were 30-day notices.
    root_lot_id = payload.get("root_lot_id", payload["lot_id"])
    days_before = int(payload.get("days_before", 30))
    return Planned(
        "shopper",
        int(payload["shopper_id"]),
        "points_expiring",
        f"lot:{root_lot_id}:{days_before}",
        {
            "points": int(payload["points"]),
            "expires_at": datetime.fromisoformat(payload["expires_at"]),
            "days_before": days_before,
        },
    )


def _tier(payload: dict[str, Any]) -> Planned:
    return Planned(
        "shopper",
        int(payload["shopper_id"]),
        "tier_changed",
        f"tier:{payload['to_tier']}:{payload['changed_at']}",
        {
            "from_tier": payload["from_tier"],
            "to_tier": payload["to_tier"],
            "direction": payload["direction"],
        },
    )


def _referral(payload: dict[str, Any]) -> list[Planned]:
    friend = int(payload["referred_shopper_id"])
    messages = [
        Planned(
            "shopper",
            friend,
            "referral_rewarded",
            f"referral:{friend}:friend",
            {"role": "friend", "points": int(payload["friend_points"])},
        )
    ]
    referrer = payload.get("referrer_shopper_id")
    if referrer is not None and int(payload["referrer_points"]) > 0:
        messages.append(
            Planned(
                "shopper",
                int(referrer),
                "referral_rewarded",
                f"referral:{friend}:referrer",
                {"role": "referrer", "points": int(payload["referrer_points"])},
            )
        )
    return messages


def _statement(partner_id: int, payload: dict[str, Any]) -> Planned:
    start = payload.get("period_start")
    return Planned(
        "partner",
        partner_id,
        "statement_ready",
        f"statement:{payload['statement_id']}",
        {
            "statement_id": int(payload["statement_id"]),
            "period_start": None if start is None else datetime.fromisoformat(start),
            "period_end": datetime.fromisoformat(payload["period_end"]),
            "currency": payload["currency"],
            "payment_minor": int(payload["payment_minor"]),
            "payer": payload["payer"],
        },
    )


async def recipient(conn: Conn, planned: Planned) -> Recipient:
    """The recipient's address and language as they are now, and whether they may be mailed."""
    if planned.recipient_kind == "partner":
        row = await conn.fetchrow(PARTNER_RECIPIENT, planned.recipient_id)
        assert row is not None, "statements reference their partner"
        refused = None if row["email"] else "skipped_no_address"
        return Recipient(row["email"], row["locale"], None, refused, {"partner_name": row["name"]})
    return await shopper_recipient(conn, planned.recipient_id, consent_needed=True)


async def shopper_recipient(conn: Conn, shopper_id: int, *, consent_needed: bool) -> Recipient:
    row = await conn.fetchrow(SHOPPER_RECIPIENT, shopper_id)
    if row is None or row["erased"]:
        return Recipient(None, "en", None, "skipped_erased", {})
    refused = None
    if row["email"] is None:
        refused = "skipped_no_address"
    elif consent_needed and not row["consented"]:
        refused = "skipped_no_consent"
    return Recipient(row["email"], row["locale"], int(row["id"]), refused, {})
