"""Tiers: upgrades at once, downgrades only at the yearly review and one level at a time."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from infra.db import Conn
from shoppers import service as shoppers
from shoppers import tiers

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def years(n: int) -> datetime:
    """T0 plus n calendar years (the review is a calendar year after a change)."""
    return T0.replace(year=T0.year + n)


async def new_partner(conn: Conn) -> int:
    slug = f"p-{uuid.uuid4().hex[:12]}"
    partner_id: int = await conn.fetchval(
        "INSERT INTO partners (slug, name, created_by) VALUES ($1, $1, 'test') RETURNING id", slug
    )
    return partner_id


async def new_shopper(conn: Conn, partner_id: int) -> shoppers.CardHolder:
    return await shoppers.enroll(conn, partner_id=partner_id, card_number=None)


async def purchase_row(
    conn: Conn,
    holder: shoppers.CardHolder,
    partner_id: int,
    *,
    amount_minor: int,
    points: int,
    at: datetime,
    kind: str = "purchase",
    original_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """A partner transaction as the purchase path writes it, at a chosen time."""
    transaction_id = uuid.uuid4()
    await conn.execute(
        """
        INSERT INTO partner_transactions (id, partner_id, partner_ref, kind, status, shopper_id,
            card_number, points, amount_minor, pricing_version, original_id, idempotency_key,
            created_at)
        VALUES ($1, $2, $3, $4, 'completed', $5, $6, $7, $8, 1, $9, $3, $10)
        """,
        transaction_id,
        partner_id,
        f"ref-{transaction_id.hex[:16]}",
        kind,
        holder.shopper_id,
        holder.card_number,
        points,
        amount_minor,
        original_id,
        at,
    )
    return transaction_id


async def tier_events(conn: Conn, shopper_id: int) -> list[dict[str, object]]:
    rows = await conn.fetch(
        "SELECT payload FROM event_outbox WHERE event_type = 'tier.changed' AND shopper_id = $1 "
        "ORDER BY event_id",
        shopper_id,
    )
    return [json.loads(row["payload"]) for row in rows]


async def test_upgrades_take_effect_at_the_purchase_that_qualifies(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        partner_id = await new_partner(conn)
        holder = await new_shopper(conn, partner_id)
        assert await tiers.earn_multiplier_bps(conn, holder.shopper_id) == 10_000

        await purchase_row(conn, holder, partner_id, amount_minor=10_000, points=100, at=T0)
        await tiers.after_purchase(conn, holder.shopper_id, now=T0)
        assert (await tiers.tier_of(conn, holder.shopper_id)).name == "member"

        await purchase_row(conn, holder, partner_id, amount_minor=45_000, points=450, at=T0 + DAY)
        await tiers.after_purchase(conn, holder.shopper_id, now=T0 + DAY)
        assert (await tiers.tier_of(conn, holder.shopper_id)).name == "silver"
        assert await tiers.earn_multiplier_bps(conn, holder.shopper_id) == 12_500

        # Points earned qualify as well as spend: 10,000 points reach Gold at once.
        await purchase_row(conn, holder, partner_id, amount_minor=1, points=10_000, at=T0 + 2 * DAY)
        await tiers.after_purchase(conn, holder.shopper_id, now=T0 + 2 * DAY)
        assert (await tiers.tier_of(conn, holder.shopper_id)).name == "gold"
        assert await tiers.earn_multiplier_bps(conn, holder.shopper_id) == 15_000

        events = await tier_events(conn, holder.shopper_id)
    assert [(e["from_tier"], e["to_tier"], e["reason"]) for e in events] == [
        ("member", "silver", "qualified"),
        ("silver", "gold", "qualified"),
    ]
    assert events[0]["spend_minor_12m"] == 55_000


async def test_a_purchase_never_downgrades(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        partner_id = await new_partner(conn)
        holder = await new_shopper(conn, partner_id)
        bought = await purchase_row(
            conn, holder, partner_id, amount_minor=250_000, points=2_500, at=T0
        )
        await tiers.after_purchase(conn, holder.shopper_id, now=T0)
        # The purchase is refunded: the shopper no longer qualifies, but stays Gold until review.
        await purchase_row(
            conn,
            holder,
            partner_id,
            amount_minor=250_000,
            points=2_500,
            at=T0 + DAY,
            kind="refund",
            original_id=bought,
        )
        await purchase_row(conn, holder, partner_id, amount_minor=100, points=1, at=T0 + 2 * DAY)
        await tiers.after_purchase(conn, holder.shopper_id, now=T0 + 2 * DAY)
        status = await tiers.tier_status(conn, holder.shopper_id, now=T0 + 2 * DAY)
    assert status.tier == "gold"
    assert status.spend_minor_12m == 100
    assert status.review_at == years(1)


async def test_downgrades_wait_for_the_yearly_review_and_go_one_level_at_a_time(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        partner_id = await new_partner(conn)
        holder = await new_shopper(conn, partner_id)
        bought = await purchase_row(
            conn, holder, partner_id, amount_minor=250_000, points=2_500, at=T0
        )
        await tiers.after_purchase(conn, holder.shopper_id, now=T0)
        await purchase_row(
            conn,
            holder,
            partner_id,
            amount_minor=250_000,
            points=2_500,
            at=T0 + DAY,
            kind="refund",
            original_id=bought,
        )
    shopper_id = holder.shopper_id

    async def tier_name() -> str:
        async with pool.acquire() as conn:
            return (await tiers.tier_of(conn, shopper_id)).name

    # Not qualifying any more, but the review date has not come: no change.
    await tiers.review_tiers(pool, now=T0 + 200 * DAY)
    assert await tier_name() == "gold"
    await tiers.review_tiers(pool, now=years(1) - DAY)
    assert await tier_name() == "gold"

    # At the review: one level down, not straight to Member.
    assert await tiers.review_tiers(pool, now=years(1)) >= 1
    assert await tier_name() == "silver"
    # The next review is a year later: running again changes nothing.
    await tiers.review_tiers(pool, now=years(1) + 30 * DAY)
    assert await tier_name() == "silver"

    await tiers.review_tiers(pool, now=years(2))
    assert await tier_name() == "member"
    async with pool.acquire() as conn:
        assert await tiers.earn_multiplier_bps(conn, shopper_id) == 10_000
        events = await tier_events(conn, shopper_id)
    assert [(e["from_tier"], e["to_tier"], e["reason"], e["direction"]) for e in events] == [
        ("member", "gold", "qualified", "up"),
        ("gold", "silver", "yearly_review", "down"),
        ("silver", "member", "yearly_review", "down"),
    ]


async def test_a_shopper_who_still_qualifies_keeps_the_tier_at_review(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        partner_id = await new_partner(conn)
        holder = await new_shopper(conn, partner_id)
        await purchase_row(conn, holder, partner_id, amount_minor=60_000, points=600, at=T0)
        await tiers.after_purchase(conn, holder.shopper_id, now=T0)
        # Still buying within the 12 months before the review.
        await purchase_row(
            conn, holder, partner_id, amount_minor=60_000, points=600, at=T0 + 300 * DAY
        )
    await tiers.review_tiers(pool, now=years(1))
    async with pool.acquire() as conn:
        status = await tiers.tier_status(conn, holder.shopper_id, now=years(1))
        events = await tier_events(conn, holder.shopper_id)
    assert status.tier == "silver"
    assert status.review_at == years(2)
    assert len(events) == 1


def test_qualification_takes_the_best_tier_either_measure_reaches() -> None:
    def q(points: int, spend: int) -> str:
        return tiers.qualified_tier(
            tiers.Qualification(points_earned_12m=points, spend_minor_12m=spend)
        ).name

    assert q(0, 0) == "member"
    assert q(2_499, 49_999) == "member"
    assert q(2_500, 0) == "silver"
    assert q(0, 50_000) == "silver"
    assert q(10_000, 0) == "gold"
    assert q(0, 200_000) == "gold"
