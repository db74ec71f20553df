"""A partial refund of a burn returns points in the exact reverse of the burn's lot order.

Found by the stateful test: the burn takes soonest-expiry lots first and never-expiring lots
last, so a partial refund gives back to the never-expiring lot first; the money lines follow
that lot's issue price.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from ledger import service as ledger
from ledger.verify import verify

SHOPPER_ID = 8_800_001
PARTNER_ID = 88


async def test_a_partial_refund_returns_to_the_never_expiring_lot_first(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        await ledger.earn(
            conn,
            idempotency_key="order:dated",
            shopper_id=SHOPPER_ID,
            partner_id=PARTNER_ID,
            points=1,
            issue_price_micros=1,
            expires_at=datetime.now(UTC) + timedelta(days=30),
        )
        await ledger.earn(
            conn,
            idempotency_key="order:forever",
            shopper_id=SHOPPER_ID,
            partner_id=PARTNER_ID,
            points=25,
            issue_price_micros=0,
            expires_at=None,
        )
        deferred_before = await ledger.balance(conn, ledger.network_account("deferred_revenue"))
        burned = await ledger.burn(
            conn,
            idempotency_key="order:burn",
            shopper_id=SHOPPER_ID,
            partner_id=PARTNER_ID,
            points=26,
            redemption_price_micros=0,
        )
        deferred_after_burn = await ledger.balance(conn, ledger.network_account("deferred_revenue"))
        await ledger.refund_burn(
            conn, idempotency_key="order:refund", original_entry_id=burned.entry_id, points=1
        )
        deferred_after_refund = await ledger.balance(
            conn, ledger.network_account("deferred_revenue")
        )
        remaining = await conn.fetch(
            "SELECT expires_at IS NULL AS forever, remaining FROM ledger.lot "
            "WHERE shopper_id = $1 ORDER BY lot_id",
            SHOPPER_ID,
        )
        problems = await verify(conn)
    assert deferred_after_burn - deferred_before == 1  # the dated lot's 1 point at 1 micro
    assert deferred_after_refund == deferred_after_burn  # the point returned to the 0-priced lot
    assert [(r["forever"], r["remaining"]) for r in remaining] == [(False, 0), (True, 1)]
    assert problems == []
