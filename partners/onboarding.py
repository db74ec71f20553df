"""Onboarding: partners, versioned pricing contracts and API keys (operator calls)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from contracts.partners import (
    ApiKey,
    ApiKeyCreated,
    Partner,
    PartnerCreate,
    PricingVersion,
    PricingVersionCreate,
)
from infra.db import Conn
from partners import queries
from partners._common import aware
from partners.errors import (
    KeyLimitReached,
    NotFound,
    PricingEffectiveInPast,
    PricingEffectiveTaken,
    SlugTaken,
)
from partners.keybox import KeyBox

ACTIVE_KEYS_MAX = 2  # the old and the new secret during a rotation
KEY_ID_HEX_BYTES = 12
SECRET_BYTES = 32
PRICING_EFFECTIVE_SKEW_S = 5


@dataclass(frozen=True)
class PartnerKey:
    """What signature verification needs to know about a key id."""

    key_id: str
    partner_id: int
    partner_slug: str
    secret: str
    revoked: bool
    rate_limit_per_s: int

    def __repr__(self) -> str:  # never print the secret
        return f"PartnerKey({self.key_id!r}, partner_id={self.partner_id}, revoked={self.revoked})"


async def create_partner(conn: Conn, req: PartnerCreate, *, operator: str) -> Partner:
    partner_id = await conn.fetchval(
        queries.INSERT_PARTNER, req.slug, req.name, req.rate_limit_per_s, operator
    )
    if partner_id is None:
        raise SlugTaken(req.slug)
    await conn.fetchval(
        queries.INSERT_PRICING_VERSION,
        partner_id,
        None,
        req.issue_price_micros,
        req.redemption_price_micros,
        req.earn_points,
        req.earn_spend_minor,
        operator,
    )
    return await get_partner(conn, partner_id)


async def add_pricing_version(
    conn: Conn, partner_id: int, req: PricingVersionCreate, *, operator: str
) -> Partner:
    """A new pricing version: effective now or later; the past is never rewritten, and no two
    versions start at the same moment (the table's unique key, said as a 409, not a 500)."""
    if await conn.fetchval(queries.LOCK_PARTNER, partner_id) is None:
        raise NotFound("partner")
    effective_at = req.effective_at and aware(req.effective_at)
    if effective_at is not None:
        now = datetime.now(UTC)
        if effective_at < now - timedelta(seconds=PRICING_EFFECTIVE_SKEW_S):
            raise PricingEffectiveInPast()
    # The partner row is locked: no concurrent version can start at that moment meanwhile.
    taken = await conn.fetchval(queries.PRICING_STARTING_AT, partner_id, effective_at)
    if taken is not None:
        raise PricingEffectiveTaken(taken)
    await conn.fetchval(
        queries.INSERT_PRICING_VERSION,
        partner_id,
        effective_at,
        req.issue_price_micros,
        req.redemption_price_micros,
        req.earn_points,
        req.earn_spend_minor,
        operator,
    )
    return await get_partner(conn, partner_id)


async def set_rate_limit(conn: Conn, partner_id: int, rate_limit_per_s: int) -> int:
    """Change a partner's per-key limit; answers the limit it replaced. Each process's key
    cache holds the old one until it forgets the partner's keys (or their TTL ends)."""
    assert rate_limit_per_s >= 1, rate_limit_per_s
    before = await conn.fetchval(queries.SET_RATE_LIMIT, partner_id, rate_limit_per_s)
    if before is None:
        raise NotFound("partner")
    return int(before)


async def get_partner(conn: Conn, partner_id: int) -> Partner:
    row = await conn.fetchrow(queries.PARTNER, partner_id)
    if row is None:
        raise NotFound("partner")
    versions = await conn.fetch(queries.PRICING_VERSIONS, partner_id)
    return Partner(
        id=row["id"],
        name=row["name"],
        slug=row["slug"],
        rate_limit_per_s=row["rate_limit_per_s"],
        created_at=row["created_at"],
        pricing=[PricingVersion(**dict(v)) for v in versions],
    )


async def create_api_key(
    conn: Conn, keybox: KeyBox, partner_id: int, *, operator: str
) -> ApiKeyCreated:
    """A new key and secret; the secret is returned here once and stored sealed."""
    if await conn.fetchval(queries.LOCK_PARTNER, partner_id) is None:
        raise NotFound("partner")
    if await conn.fetchval(queries.ACTIVE_KEY_COUNT, partner_id) >= ACTIVE_KEYS_MAX:
        raise KeyLimitReached(ACTIVE_KEYS_MAX)
    key_id = "pk_" + secrets.token_hex(KEY_ID_HEX_BYTES)
    secret = "sk_" + secrets.token_urlsafe(SECRET_BYTES)
    created_at = await conn.fetchval(
        queries.INSERT_KEY, key_id, partner_id, keybox.seal(key_id, secret), operator
    )
    return ApiKeyCreated(key_id=key_id, partner_id=partner_id, secret=secret, created_at=created_at)


async def revoke_api_key(conn: Conn, partner_id: int, key_id: str, *, operator: str) -> ApiKey:
    """Revoke a key (idempotent: revoking again keeps the first revocation time)."""
    row = await conn.fetchrow(queries.REVOKE_KEY, key_id, partner_id, operator)
    if row is None:
        raise NotFound("key")
    return ApiKey(**dict(row))


async def key_for_signature(conn: Conn, keybox: KeyBox, key_id: str) -> PartnerKey | None:
    row = await conn.fetchrow(queries.KEY_FOR_SIGNATURE, key_id)
    if row is None:
        return None
    return PartnerKey(
        key_id=row["key_id"],
        partner_id=row["partner_id"],
        partner_slug=row["slug"],
        secret=keybox.open(row["key_id"], bytes(row["secret_sealed"])),
        revoked=row["revoked_at"] is not None,
        rate_limit_per_s=row["rate_limit_per_s"],
    )
