"""Read-only listings for operators: every partner, and a partner's API keys (never secrets)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from contracts.partners import ApiKey
from infra.db import Conn

PARTNERS_LIMIT_MAX = 500

PARTNERS = """
SELECT p.id, p.name, p.slug, p.rate_limit_per_s, p.created_at,
       (SELECT count(*) FROM partner_api_keys k
        WHERE k.partner_id = p.id AND k.revoked_at IS NULL) AS active_keys
FROM partners p
ORDER BY p.id
LIMIT $1
"""

KEYS = """
SELECT key_id, partner_id, created_at, revoked_at
FROM partner_api_keys
WHERE partner_id = $1
ORDER BY created_at DESC, key_id
"""


@dataclass(frozen=True)
class PartnerSummary:
    id: int
    name: str
    slug: str
    rate_limit_per_s: int
    created_at: datetime
    active_keys: int


async def list_partners(conn: Conn, *, limit: int = PARTNERS_LIMIT_MAX) -> list[PartnerSummary]:
    assert 1 <= limit <= PARTNERS_LIMIT_MAX, limit
    rows = await conn.fetch(PARTNERS, limit)
    return [
        PartnerSummary(
            id=row["id"],
            name=row["name"],
            slug=row["slug"],
            rate_limit_per_s=row["rate_limit_per_s"],
            created_at=row["created_at"],
            active_keys=int(row["active_keys"]),
        )
        for row in rows
    ]


async def list_keys(conn: Conn, partner_id: int) -> list[ApiKey]:
    rows = await conn.fetch(KEYS, partner_id)
    return [
        ApiKey(
            key_id=row["key_id"],
            partner_id=row["partner_id"],
            created_at=row["created_at"],
            revoked_at=row["revoked_at"],
        )
        for row in rows
    ]
