"""Points lifetime as a network setting, and `points.expiring` notices exactly once per lot."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from ledger import service as ledger
from shoppers import expiry, identity
from shoppers import service as shoppers

NOW = datetime.now(UTC)
DAY = timedelta(days=1)
THIRTY = (30,)  # the 30-day notice alone (tests/mail/ covers 30 and 7 together)


async def test_the_lifetime_is_a_setting_defaulting_to_24_months(pool: asyncpg.Pool) -> None:
    earned_at = datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
    async with pool.acquire() as conn, conn.transaction():
        assert await expiry.points_lifetime_months(conn) == 24
        assert await expiry.earned_points_expire_at(conn, earned_at=earned_at) == datetime(
            2028, 1, 31, 10, 0, tzinfo=UTC
        )
        await expiry.set_points_lifetime_months(conn, 12)
        assert await expiry.earned_points_expire_at(conn, earned_at=earned_at) == datetime(
            2027, 1, 31, 10, 0, tzinfo=UTC
        )
        await expiry.set_points_lifetime_months(conn, 24)


async def test_each_lot_gets_one_notice_30_days_ahead(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        partner_id: int = await conn.fetchval(
            "INSERT INTO partners (slug, name, created_by) VALUES ('expiry-p', 'Ex', 't') "
            "RETURNING id"
        )
        holder = await shoppers.enroll(conn, partner_id=partner_id, card_number=None)
        other = await shoppers.enroll(conn, partner_id=partner_id, card_number=None)
        for shopper_id, points, days in (
            (holder.shopper_id, 40, 20),
            (holder.shopper_id, 60, 45),
            (holder.shopper_id, 80, 400),
            (other.shopper_id, 10, 25),
        ):
            await ledger.earn(
                conn,
                idempotency_key=f"test:{uuid.uuid4().hex}",
                shopper_id=shopper_id,
                partner_id=partner_id,
                points=points,
                issue_price_micros=10_000,
                expires_at=NOW + days * DAY,
            )

    # Two concurrent runs: each lot within 30 days is noticed once.
    first, second = await asyncio.gather(
        expiry.record_expiry_notices(pool, now=NOW, days_before=THIRTY),
        expiry.record_expiry_notices(pool, now=NOW, days_before=THIRTY),
    )
    assert first + second == 2
    assert await expiry.record_expiry_notices(pool, now=NOW, days_before=THIRTY) == 0
    # Twenty days on, the 45-day lot enters the window.
    assert await expiry.record_expiry_notices(pool, now=NOW + 20 * DAY, days_before=THIRTY) == 1

    # A merge moves a noticed lot: it is not noticed again under the survivor.
    async with pool.acquire() as conn, conn.transaction():
        await identity.merge_shoppers(
            conn,
            survivor_id=other.shopper_id,
            absorbed_id=holder.shopper_id,
            reason="same person",
            operator="ops",
            now=NOW,
        )
    assert await expiry.record_expiry_notices(pool, now=NOW + 20 * DAY, days_before=THIRTY) == 0

    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT shopper_id, payload FROM event_outbox WHERE event_type = 'points.expiring' "
            "ORDER BY event_id"
        )
    payloads = [json.loads(row["payload"]) for row in rows]
    assert sorted(p["points"] for p in payloads) == [10, 40, 60]
    assert all(p["issued_by_partner_id"] == partner_id for p in payloads)
