"""The issue's end-to-end test: two partners, enroll at A, earn at A, redeem at B, refunds,
hold and capture; balances and settlement accounts equal hand-computed values; the ledger
verifies."""

from __future__ import annotations

import asyncpg
import httpx

from contracts.partners import HoldRequest, PurchaseRequest, RedemptionRequest, RefundRequest
from gateway.tokens import SigningKey
from ledger import service as ledger
from ledger import verify
from tests.support.partner_network import onboard

# Partner A: pays 0.01 EUR per point issued, is paid 0.008 per point redeemed, 1 pt per EUR.
A_ISSUE_MICROS, A_REDEEM_MICROS = 10_000, 8_000
# Partner B: pays 0.012, is paid 0.009, 2 pts per EUR.
B_ISSUE_MICROS, B_REDEEM_MICROS = 12_000, 9_000


async def test_two_partners_earn_redeem_refund_hold_capture(
    base_url: str, http: httpx.AsyncClient, signing_key: SigningKey, database_url: str
) -> None:
    a = await onboard(
        http,
        signing_key,
        "grocer-a",
        issue_price_micros=A_ISSUE_MICROS,
        redemption_price_micros=A_REDEEM_MICROS,
        earn_points=1,
        earn_spend_minor=100,
    )
    b = await onboard(
        http,
        signing_key,
        "fuel-b",
        issue_price_micros=B_ISSUE_MICROS,
        redemption_price_micros=B_REDEEM_MICROS,
        earn_points=2,
        earn_spend_minor=100,
    )
    async with a.client(base_url) as at_a, b.client(base_url) as at_b:
        shopper = await at_a.enroll()
        card = shopper.card_number

        earned = await at_a.purchase(
            PurchaseRequest(
                partner_ref="a-1", card_number=card, amount_minor=50_000, currency="EUR"
            )
        )
        assert (earned.points_earned, earned.balance) == (500, 500)

        redeemed = await at_b.redeem(
            RedemptionRequest(partner_ref="b-1", card_number=card, points=200)
        )
        assert (redeemed.points_redeemed, redeemed.value_minor, redeemed.balance) == (200, 180, 300)

        # A refunds a fifth of the purchase: a fifth of its points leave the unspent lot.
        refund_a = await at_a.refund(
            RefundRequest(partner_ref="a-2", original_partner_ref="a-1", amount_minor=10_000)
        )
        assert (refund_a.points_refunded, refund_a.balance) == (100, 200)

        # B refunds 50 of the redeemed points: they return to the shopper's lot.
        refund_b = await at_b.refund(
            RefundRequest(partner_ref="b-2", original_partner_ref="b-1", points=50)
        )
        assert (refund_b.points_refunded, refund_b.balance) == (50, 250)

        held = await at_b.hold(HoldRequest(partner_ref="b-3", card_number=card, points=100))
        assert (held.balance, held.held, held.status) == (150, 100, "open")
        captured = await at_b.capture(held.hold_id, 60)
        assert (captured.status, captured.points_captured, captured.balance, captured.held) == (
            "captured",
            60,
            190,
            0,
        )
        assert captured.value_minor == 54

        view = await at_b.shopper(card)
        assert (view.balance, view.held) == (190, 0)
        assert sum(lot.points for lot in view.expiring) in (0, 190)

        listed = await at_a.transactions()
        assert [t.partner_ref for t in listed.items] == ["a-2", "a-1"]

    conn = await asyncpg.connect(database_url)
    try:
        a_settlement = 500 * A_ISSUE_MICROS - 100 * A_ISSUE_MICROS
        b_settlement = -200 * B_REDEEM_MICROS + 50 * B_REDEEM_MICROS - 60 * B_REDEEM_MICROS
        deferred = -190 * A_ISSUE_MICROS  # every remaining point sits in A's lot
        margin = (
            -(200 * A_ISSUE_MICROS - 200 * B_REDEEM_MICROS)
            + (50 * A_ISSUE_MICROS - 50 * B_REDEEM_MICROS)
            - (60 * A_ISSUE_MICROS - 60 * B_REDEEM_MICROS)
        )
        balances = {
            "a": await ledger.balance(conn, ledger.settlement_account(a.partner_id)),
            "b": await ledger.balance(conn, ledger.settlement_account(b.partner_id)),
            "wallet": await ledger.balance(conn, ledger.wallet_account(shopper.shopper_id)),
            "issued": await ledger.balance(conn, ledger.network_account("points_issued")),
            "deferred": await ledger.balance(conn, ledger.network_account("deferred_revenue")),
            "margin": await ledger.balance(conn, ledger.network_account("redemption_margin")),
        }
        assert balances == {
            "a": a_settlement,
            "b": b_settlement,
            "wallet": 190,
            "issued": -190,
            "deferred": deferred,
            "margin": margin,
        }
        assert a_settlement + b_settlement + deferred + margin == 0
        assert await verify.verify(conn) == []
    finally:
        await conn.close()
