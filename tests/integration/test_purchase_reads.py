"""A purchase reads everything it needs in one statement (`queries.PURCHASE_CONTEXT`) and, in
the common case, writes everything in another (`queries.PURCHASE_WRITE`: earn, record, lines,
breakdown, tier qualification, event): the round trips are pinned, and so are the rules that
reading once must keep (error order, pricing in effect now, referral, first purchase)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from contracts.partners import EnrollRequest, PricingVersionCreate, PurchaseRequest
from partners import operations
from partners.errors import CurrencyUnsupported, PartnerRefConflict
from shoppers import referrals
from shoppers.errors import CardBlocked, CardUnknown
from tests.support import program
from tests.support.round_trips import RoundTrips

# A member's purchase, no campaign, no referral: the read, then one write (ledger.earn, the
# transaction record, lines + breakdown + tier qualification, the purchase.recorded event).
PLAIN_PURCHASE_ROUND_TRIPS = 2


@pytest.fixture(scope="module")
async def partner_id(pool: asyncpg.Pool) -> int:
    return await program.partner(pool, "reads")


def purchase_request(card_number: str, ref: str, **fields: Any) -> PurchaseRequest:
    return PurchaseRequest(
        **{
            "partner_ref": ref,
            "card_number": card_number,
            "amount_minor": 5_000,
            "currency": "EUR",
            **fields,
        }
    )


async def purchase(pool: asyncpg.Pool, partner_id: int, request: PurchaseRequest) -> Any:
    async with pool.acquire() as conn, conn.transaction():
        return await operations.purchase(
            conn, partner_id, request, idempotency_key=request.partner_ref
        )


async def test_a_plain_purchase_costs_two_round_trips(
    pool: asyncpg.Pool, partner_id: int, round_trips: RoundTrips
) -> None:
    holder = await program.shopper(pool, partner_id)
    async with pool.acquire() as conn, conn.transaction():
        before = round_trips.count
        result = await operations.purchase(
            conn,
            partner_id,
            purchase_request(holder.card_number, "plain-1"),
            idempotency_key="plain-1",
        )
        assert round_trips.count - before == PLAIN_PURCHASE_ROUND_TRIPS
    assert result.points_earned == 50


async def test_errors_keep_their_order(pool: asyncpg.Pool, partner_id: int) -> None:
    holder = await program.shopper(pool, partner_id)
    blocked = await program.shopper(pool, partner_id)
    await pool.execute(
        "UPDATE shopper_cards SET status = 'blocked' WHERE card_number = $1", blocked.card_number
    )
    await program.buy(pool, partner_id, holder.card_number, 1_000)
    taken: str = await pool.fetchval(
        "SELECT partner_ref FROM partner_transactions WHERE shopper_id = $1", holder.shopper_id
    )
    unknown_card = "4" * 16
    with pytest.raises(CurrencyUnsupported):  # before the card
        await purchase(pool, partner_id, purchase_request(unknown_card, "e-1", currency="USD"))
    with pytest.raises(CardUnknown):
        await purchase(pool, partner_id, purchase_request(unknown_card, taken))
    with pytest.raises(CardBlocked):  # before the reference
        await purchase(pool, partner_id, purchase_request(blocked.card_number, taken))
    with pytest.raises(PartnerRefConflict):  # before the basket's lines are checked
        await purchase(pool, partner_id, purchase_request(holder.card_number, taken))


async def test_a_pricing_version_effective_now_prices_the_very_next_purchase(
    pool: asyncpg.Pool,
) -> None:
    partner_id = await program.partner(pool, "repriced")  # 1 point per 1.00
    holder = await program.shopper(pool, partner_id)
    assert (await program.buy(pool, partner_id, holder.card_number, 1_000)).points_earned == 10

    async def price(earn_points: int, effective_at: datetime | None) -> None:
        terms = PricingVersionCreate(
            issue_price_micros=10_000,
            redemption_price_micros=8_000,
            earn_points=earn_points,
            earn_spend_minor=100,
            effective_at=effective_at,
        )
        async with pool.acquire() as conn, conn.transaction():
            await operations.add_pricing_version(conn, partner_id, terms, operator="test")

    await price(3, None)  # effective now
    await price(7, datetime.now(UTC) + timedelta(hours=1))  # not yet
    result = await program.buy(pool, partner_id, holder.card_number, 1_000)
    assert result.points_earned == 30
    version = await pool.fetchval(
        "SELECT pricing_version FROM partner_transactions WHERE id = $1::uuid",
        result.transaction_id,
    )
    assert version == 2


async def test_only_a_referred_shoppers_first_qualifying_purchase_pays_the_referral(
    pool: asyncpg.Pool, partner_id: int
) -> None:
    referrer = await program.shopper(pool, partner_id)
    async with pool.acquire() as conn, conn.transaction():
        code = await referrals.code_for(conn, referrer.shopper_id)
        friend = await operations.enroll_shopper(
            conn, partner_id, EnrollRequest(referral_code=code)
        )
    stranger = await program.shopper(pool, partner_id)
    amount = referrals.QUALIFYING_PURCHASE_MINOR

    first = await program.buy(pool, partner_id, friend.card_number, amount)
    second = await program.buy(pool, partner_id, friend.card_number, amount)
    unreferred = await program.buy(pool, partner_id, stranger.card_number, amount)

    assert ("referral", referrals.FRIEND_BONUS_POINTS) in [
        (item.kind, item.points) for item in first.breakdown
    ]
    assert "referral" not in [item.kind for item in second.breakdown]
    assert "referral" not in [item.kind for item in unreferred.breakdown]
    assert await program.balance(pool, referrer.card_number) == referrals.REFERRER_BONUS_POINTS


async def test_a_first_purchase_campaign_reads_where_the_shopper_bought(
    pool: asyncpg.Pool,
) -> None:
    partner_id = await program.partner(pool, "welcoming")
    other_id = await program.partner(pool, "elsewhere")
    await program.campaign(pool, partner_id, bonus_points=40, first_purchase=True)
    holder = await program.shopper(pool, partner_id)
    await program.buy(pool, other_id, holder.card_number, 1_000)  # not at this partner

    first = await program.buy(pool, partner_id, holder.card_number, 1_000)
    again = await program.buy(pool, partner_id, holder.card_number, 1_000)

    assert [(i.kind, i.points) for i in first.breakdown] == [("base", 10), ("campaign", 40)]
    assert [(i.kind, i.points) for i in again.breakdown] == [("base", 10)]
    await program.end_all_campaigns(pool)
