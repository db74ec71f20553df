"""A shopper's consent per partner: which partners may be told about the shopper's points.

Read at send time by the webhook fan-out (`points.expiring` goes only to consented partners)
and set by the shopper (the card page, the shopper API). No row means no consent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from contracts.errors import DomainError, ErrorCode
from infra.db import Conn
from shoppers import queries
from shoppers.account import live_shopper_id

PARTNERS_LISTED_MAX = 500

__all__ = ["PartnerConsent", "consented_partner_ids", "partner_consents", "set_partner_consent"]


@dataclass(frozen=True)
class PartnerConsent:
    partner_id: int
    slug: str
    name: str
    granted: bool
    updated_at: datetime | None


class PartnerUnknown(DomainError):
    code = ErrorCode.NOT_FOUND


async def partner_consents(conn: Conn, shopper_id: int) -> list[PartnerConsent]:
    """Every partner of the network with this shopper's consent to it (False when unset)."""
    shopper_id = await live_shopper_id(conn, shopper_id)
    rows = await conn.fetch(queries.PARTNER_CONSENTS, shopper_id, PARTNERS_LISTED_MAX)
    return [PartnerConsent(**dict(row)) for row in rows]


async def set_partner_consent(
    conn: Conn, shopper_id: int, partner_id: int, *, granted: bool
) -> PartnerConsent:
    shopper_id = await live_shopper_id(conn, shopper_id)
    row = await conn.fetchrow(queries.UPSERT_PARTNER_CONSENT, shopper_id, partner_id, granted)
    if row is None:
        raise PartnerUnknown(f"no partner {partner_id}")
    for consent in await partner_consents(conn, shopper_id):
        if consent.partner_id == partner_id:
            return consent
    raise AssertionError("an upserted consent is listed")


async def consented_partner_ids(conn: Conn, shopper_id: int) -> list[int]:
    """The partners this shopper consented to, for a sender deciding who may be told."""
    return [
        row["partner_id"] for row in await conn.fetch(queries.CONSENTED_PARTNER_IDS, shopper_id)
    ]
