"""Consent is enforced at read time: a shopper who withdraws it leaves a partner's
cross-partner insights at once, before the next segment refresh removes their memberships."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from contracts.shoppers import ConsentUpdate
from shoppers import account, insights, segments
from tests.support import program
from tests.support.generated_network import fold_all

CONSENTING = 11  # one withdrawal leaves 10: still released at k = 10


async def test_a_withdrawal_leaves_cross_partner_insights_at_once(pool: asyncpg.Pool) -> None:
    shop_a = await program.partner(pool, "consent-agg-a")
    shop_b = await program.partner(pool, "consent-agg-b")
    holders = [await program.shopper(pool, shop_a) for _ in range(CONSENTING)]
    for holder in holders:
        async with pool.acquire() as conn, conn.transaction():
            await account.update_consent(
                conn, holder.shopper_id, ConsentUpdate(data_sharing=True, marketing=False)
            )
        await program.buy(pool, shop_a, holder.card_number, 5_000, lines=[("grocery", 5_000)])
        await program.buy(pool, shop_b, holder.card_number, 3_000, lines=[("wine", 3_000)])
    now = datetime.now(UTC)
    await fold_all(pool)
    assert await segments.refresh_segments(pool, now=now, interval_s=0) > 0
    async with pool.acquire() as conn:
        before = await insights.cross_partner_activity(conn, shop_a, now=now)
        sizes_before = await insights.segment_sizes(conn, shop_a)
    assert (before.consenting_shoppers, before.active_elsewhere) == (CONSENTING, CONSENTING)
    assert {c.category: c.shoppers for c in before.categories} == {"wine": CONSENTING}
    assert sum(s.shoppers for s in sizes_before.segments) >= CONSENTING

    withdrawn = holders[0].shopper_id
    async with pool.acquire() as conn, conn.transaction():
        await account.update_consent(
            conn, withdrawn, ConsentUpdate(data_sharing=False, marketing=False)
        )
    async with pool.acquire() as conn:
        # No refresh yet: the memberships are still stored, the read leaves them out.
        stored = await segments.segments_of(conn, withdrawn)
        after = await insights.cross_partner_activity(conn, shop_a, now=now)
        sizes_after = await insights.segment_sizes(conn, shop_a)
    assert (after.consenting_shoppers, after.active_elsewhere) == (CONSENTING - 1, CONSENTING - 1)
    assert {c.category: c.shoppers for c in after.categories} == {"wine": CONSENTING - 1}
    cross_partner = [segment for segment in stored if segment != "birthday_month"]
    assert cross_partner != []
    shown_before = {s.segment: s.shoppers for s in sizes_before.segments}
    shown_after = {s.segment: s.shoppers for s in sizes_after.segments}
    for segment, shoppers in shown_before.items():
        expected = shoppers - 1 if segment in cross_partner else shoppers
        assert shown_after.get(segment) == (
            expected if expected >= insights.K_ANONYMITY_MIN else None
        )
