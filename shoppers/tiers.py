"""Network-wide tiers: Member, Silver, Gold.

A tier is qualified on the points earned or the spend at all partners over a rolling 12 months
(purchases net of their refunds, from `partner_transactions`). Upgrades take effect at once (at
the end of every purchase: its statement reads the qualification and ensures and locks the tier
row, migration 0192, then `upgrade_locked`; `after_purchase` does both alone); downgrades only
at the yearly review (`review_tiers`, a worker job) and one level per review. Every change
records a `tier.changed` event with its reason in the same transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from infra import outbox
from infra.db import Conn, Pool
from shoppers import queries

__all__ = [
    "QUALIFICATION_12M",
    "TIERS",
    "Qualification",
    "Tier",
    "TierStatus",
    "adopt_better_tier",
    "after_purchase",
    "earn_multiplier_bps",
    "effective_tier_of",
    "qualification_of",
    "review_tiers",
    "tier_of",
    "tier_status",
    "upgrade_if_qualified",
    "upgrade_locked",
]

# Purchases net of refunds over the 12 months before $2 for shopper $1 (and the shoppers merged
# into it): public so that a purchase may fold this read into the statement that stores it.
QUALIFICATION_12M = queries.QUALIFICATION_12M

BPS_ONE = 10_000  # 1.0x
REVIEW_BATCH_MAX = 500  # shoppers reviewed per transaction
REVIEW_BATCHES_MAX = 200  # transactions per review run; the next run picks up the rest


@dataclass(frozen=True)
class Tier:
    name: str
    rank: int
    points_earned_min: int  # points earned in 12 months that qualify
    spend_minor_min: int  # or spend in minor units in 12 months
    multiplier_bps: int  # earn multiplier, 10_000 = 1.0x


TIERS: tuple[Tier, ...] = (
    Tier("member", 0, points_earned_min=0, spend_minor_min=0, multiplier_bps=BPS_ONE),
    Tier("silver", 1, points_earned_min=2_500, spend_minor_min=50_000, multiplier_bps=12_500),
    Tier("gold", 2, points_earned_min=10_000, spend_minor_min=200_000, multiplier_bps=15_000),
)
TIER_BY_NAME = {tier.name: tier for tier in TIERS}
BASE_TIER = TIERS[0]


class Qualification(msgspec.Struct, frozen=True, kw_only=True):
    points_earned_12m: int
    spend_minor_12m: int


class TierStatus(msgspec.Struct, frozen=True, kw_only=True):
    tier: str
    multiplier_bps: int
    since: datetime | None
    review_at: datetime | None
    points_earned_12m: int
    spend_minor_12m: int
    next_tier: str | None
    points_to_next: int | None  # more points earned that reach the next tier
    spend_minor_to_next: int | None  # or more spend


def qualified_tier(q: Qualification) -> Tier:
    best = BASE_TIER
    for tier in TIERS:
        if q.points_earned_12m >= tier.points_earned_min or (
            q.spend_minor_12m >= tier.spend_minor_min
        ):
            best = tier
    return best


async def tier_of(conn: Conn, shopper_id: int) -> Tier:
    name = await conn.fetchval(queries.TIER_OF, shopper_id)
    return BASE_TIER if name is None else TIER_BY_NAME[name]


async def effective_tier_of(conn: Conn, shopper_id: int, *, now: datetime) -> Tier:
    """The tier the program treats the shopper as: the qualified one, raised to the floor of
    an active paid membership (which never changes the stored, qualified tier)."""
    tier = await tier_of(conn, shopper_id)
    return floored(tier, await conn.fetchval(queries.MEMBERSHIP_TIER_FLOOR, shopper_id, now))


def floored(tier: Tier, floor_name: str | None) -> Tier:
    floor = None if floor_name is None else TIER_BY_NAME[floor_name]
    return floor if floor is not None and floor.rank > tier.rank else tier


async def earn_multiplier_bps(conn: Conn, shopper_id: int) -> int:
    """The shopper's tier earn multiplier in basis points (10_000 = 1.0x)."""
    return (await tier_of(conn, shopper_id)).multiplier_bps


async def qualification(conn: Conn, shopper_id: int, *, now: datetime) -> Qualification:
    row = await conn.fetchrow(QUALIFICATION_12M, shopper_id, now)
    assert row is not None, "an aggregate always returns a row"
    return qualification_of(row)


def qualification_of(row: asyncpg.Record | Mapping[str, Any]) -> Qualification:
    """A qualification from the `points_earned` and `spend_minor` of QUALIFICATION_12M."""
    return Qualification(
        points_earned_12m=max(0, int(row["points_earned"])),
        spend_minor_12m=max(0, int(row["spend_minor"])),
    )


async def after_purchase(conn: Conn, shopper_id: int, *, now: datetime) -> None:
    """Re-evaluate the tier after a purchase: an upgrade takes effect at once, never a downgrade.

    Runs in the purchase's transaction; the tier row lock serializes concurrent purchases of
    one shopper, so one upgrade records one event.
    """
    q = await qualification(conn, shopper_id, now=now)
    await upgrade_if_qualified(conn, shopper_id, q, now=now)


async def upgrade_if_qualified(
    conn: Conn, shopper_id: int, q: Qualification, *, now: datetime
) -> None:
    """`after_purchase` given the qualification, read after the purchase's own row was written
    (the purchase's statement does this part itself, then calls `upgrade_locked`)."""
    target = qualified_tier(q)
    if target.rank == BASE_TIER.rank:
        return  # nothing to upgrade to; no row needed for members
    await conn.execute(queries.ENSURE_TIER_ROW, shopper_id, now)
    row = await conn.fetchrow(queries.TIER_FOR_UPDATE, shopper_id)
    assert row is not None, "the row was just ensured"
    await upgrade_locked(conn, shopper_id, row["tier"], q, now=now)


async def upgrade_locked(
    conn: Conn, shopper_id: int, tier: str, q: Qualification, *, now: datetime
) -> None:
    """The rest of `upgrade_if_qualified` once the shopper's tier row is ensured and locked
    (ENSURE_TIER_ROW, TIER_FOR_UPDATE) and read as `tier`, e.g. by the statement of a purchase
    (partners, migration 0085)."""
    current = TIER_BY_NAME[tier]
    target = qualified_tier(q)
    if target.rank > current.rank:
        await _change(conn, shopper_id, current, target, q, now=now, reason="qualified")


async def review_tiers(pool: Pool, *, now: datetime) -> int:
    """The yearly review of every shopper whose review date has come: a shopper who no longer
    qualifies goes down one level; every reviewed shopper gets its next review a year later.
    Returns how many tiers changed. Safe to run in several processes (SKIP LOCKED)."""
    changed = 0
    for _ in range(REVIEW_BATCHES_MAX):
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(queries.TIERS_DUE_FOR_REVIEW, now, REVIEW_BATCH_MAX)
            for row in rows:
                changed += await _review_one(conn, row["shopper_id"], row["tier"], now=now)
        if len(rows) < REVIEW_BATCH_MAX:
            break
    return changed


async def tier_status(conn: Conn, shopper_id: int, *, now: datetime) -> TierStatus:
    """The tier, what qualifies it, and how far the next tier is."""
    row = await conn.fetchrow(queries.TIER_ROW, shopper_id)
    qualified = BASE_TIER if row is None else TIER_BY_NAME[row["tier"]]
    tier = floored(qualified, await conn.fetchval(queries.MEMBERSHIP_TIER_FLOOR, shopper_id, now))
    q = await qualification(conn, shopper_id, now=now)
    following = TIERS[tier.rank + 1] if tier.rank + 1 < len(TIERS) else None
    return TierStatus(
        tier=tier.name,
        multiplier_bps=tier.multiplier_bps,
        since=None if row is None else row["since"],
        review_at=None if row is None or tier.rank == BASE_TIER.rank else row["review_at"],
        points_earned_12m=q.points_earned_12m,
        spend_minor_12m=q.spend_minor_12m,
        next_tier=None if following is None else following.name,
        points_to_next=(
            None if following is None else max(0, following.points_earned_min - q.points_earned_12m)
        ),
        spend_minor_to_next=(
            None if following is None else max(0, following.spend_minor_min - q.spend_minor_12m)
        ),
    )


async def adopt_better_tier(
    conn: Conn, *, survivor_id: int, absorbed_id: int, now: datetime
) -> str:
    """After a merge the survivor keeps the better of the two tiers; returns the survivor's."""
    survivor = await tier_of(conn, survivor_id)
    absorbed = await tier_of(conn, absorbed_id)
    await conn.execute(queries.DELETE_TIER_ROW, absorbed_id)
    if absorbed.rank <= survivor.rank:
        return survivor.name
    await conn.execute(queries.ENSURE_TIER_ROW, survivor_id, now)
    await conn.fetchrow(queries.TIER_FOR_UPDATE, survivor_id)
    q = await qualification(conn, survivor_id, now=now)
    await _change(conn, survivor_id, survivor, absorbed, q, now=now, reason="merge")
    return absorbed.name


async def _review_one(conn: Conn, shopper_id: int, tier_name: str, *, now: datetime) -> int:
    current = TIER_BY_NAME[tier_name]
    q = await qualification(conn, shopper_id, now=now)
    target = qualified_tier(q)
    if target.rank < current.rank:
        # One level per review, whatever the shortfall: a Gold shopper who stopped buying is
        # Silver for a year before becoming a Member.
        lower = TIERS[current.rank - 1]
        await _change(conn, shopper_id, current, lower, q, now=now, reason="yearly_review")
        return 1
    if target.rank > current.rank:  # missed by after_purchase (e.g. a merge): upgrade now
        await _change(conn, shopper_id, current, target, q, now=now, reason="qualified")
        return 1
    await conn.execute(queries.NEXT_REVIEW, shopper_id, now)
    return 0


async def _change(
    conn: Conn,
    shopper_id: int,
    current: Tier,
    target: Tier,
    q: Qualification,
    *,
    now: datetime,
    reason: str,
) -> None:
    assert current.name != target.name, (current, target)
    await conn.execute(queries.SET_TIER, shopper_id, target.name, now)
    await outbox.record(
        conn,
        "tier.changed",
        shopper_id=shopper_id,
        payload={
            "shopper_id": shopper_id,
            "from_tier": current.name,
            "to_tier": target.name,
            "direction": "up" if target.rank > current.rank else "down",
            "reason": reason,
            "points_earned_12m": q.points_earned_12m,
            "spend_minor_12m": q.spend_minor_12m,
            "changed_at": now.isoformat(),
        },
    )
