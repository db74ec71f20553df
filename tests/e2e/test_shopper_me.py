"""Shopper sessions over HTTP: a partner app mints a shopper token, the shopper reads `/v1/me`;
operators block, replace and merge; blocked cards are refused at earn and burn; erasure."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from contracts.partners import PurchaseRequest, RedemptionRequest
from contracts.sdk import CoalitionError
from gateway.tokens import Role, SigningKey
from tests.support.partner_network import Onboarded, admin_headers, onboard, signed


async def shopper_token(
    http: httpx.AsyncClient, base_url: str, partner: Onboarded, **identifier: Any
) -> httpx.Response:
    body = json.dumps(identifier).encode()
    url = f"{base_url}/v1/shopper-tokens"
    headers = signed(partner, "POST", url, body, idempotency_key=uuid.uuid4().hex)
    return await http.post(url, content=body, headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def purchase(card: str, amount_minor: int) -> PurchaseRequest:
    return PurchaseRequest(
        partner_ref=f"p-{uuid.uuid4().hex[:20]}",
        card_number=card,
        amount_minor=amount_minor,
        currency="EUR",
    )


async def test_a_shopper_session_sees_the_whole_program(
    base_url: str, http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    grocer = await onboard(http, signing_key, "me-grocer")
    fuel = await onboard(http, signing_key, "me-fuel")
    async with grocer.client(base_url) as at_grocer, fuel.client(base_url) as at_fuel:
        card = (await at_grocer.enroll()).card_number
        await at_grocer.purchase(purchase(card, 12_000))  # 120 points at 1 pt per EUR
        await at_fuel.redeem(
            RedemptionRequest(partner_ref=f"r-{uuid.uuid4().hex[:20]}", card_number=card, points=20)
        )

    minted = await shopper_token(http, base_url, fuel, card_number=card)
    assert minted.status_code == 201, minted.text
    session = minted.json()
    assert session["token_type"] == "Bearer"
    me = bearer(session["access_token"])

    profile = (await http.get("/v1/me", headers=me)).json()
    assert profile["shopper_id"] == session["shopper_id"]
    assert [c["card_number"] for c in profile["cards"]] == [card]

    balance = (await http.get("/v1/me/balance", headers=me)).json()
    assert balance == {"balance": 100, "held": 0, "debt_points": 0}

    history = (await http.get("/v1/me/history", headers=me)).json()
    by_kind = {item["kind"]: item for item in history["items"]}
    assert by_kind["earn"]["partner_name"] == "Me-Grocer"
    assert by_kind["earn"]["points"] == 120
    assert by_kind["burn"]["partner_name"] == "Me-Fuel"
    assert by_kind["burn"]["points"] == -20

    expiring = (await http.get("/v1/me/expiring", headers=me)).json()
    assert [w["within_days"] for w in expiring["windows"]] == [30, 60, 90]
    assert all(w["points"] == 0 for w in expiring["windows"])  # 24 months away

    tier = (await http.get("/v1/me/tier", headers=me)).json()
    assert (tier["tier"], tier["next_tier"], tier["spend_minor_12m"]) == (
        "member",
        "silver",
        12_000,
    )
    assert tier["spend_minor_to_next"] == 50_000 - 12_000

    offers = await http.get("/v1/me/offers", headers=me)
    assert offers.status_code == 200, offers.text
    assert offers.json()["items"] == []

    assert (await http.get("/v1/me/consent", headers=me)).json()["data_sharing"] is False
    updated = await http.put("/v1/me/consent", json={"data_sharing": True}, headers=me)
    assert updated.json()["data_sharing"] is True
    assert updated.json()["marketing"] is False

    code = await http.get("/v1/me/referral-code", headers=me)
    assert code.status_code == 200, code.text
    assert (
        code.json()["code"] == (await http.get("/v1/me/referral-code", headers=me)).json()["code"]
    )

    nps = await http.post("/v1/me/nps", json={"score": 9, "comment": "great"}, headers=me)
    assert nps.status_code == 201, nps.text
    bad_nps = await http.post("/v1/me/nps", json={"score": 11}, headers=me)
    assert bad_nps.status_code == 400

    phone = await http.put("/v1/me/phone", json={"phone": "+49 151 1111 2222"}, headers=me)
    assert phone.status_code == 200, phone.text
    assert phone.json()["phone_linked"] is True

    qr = await http.post("/v1/me/qr-token", headers=me)
    assert qr.status_code == 201, qr.text
    by_qr = await shopper_token(http, base_url, grocer, qr_token=qr.json()["qr_token"])
    assert by_qr.status_code == 201, by_qr.text
    assert by_qr.json()["shopper_id"] == session["shopper_id"]


async def test_me_needs_a_shopper_token(
    base_url: str, http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    assert (await http.get("/v1/me")).status_code == 401
    operator = await http.get("/v1/me", headers=admin_headers(signing_key))
    assert operator.status_code == 401
    assert operator.json()["code"] == "token_invalid"
    partner = await onboard(http, signing_key, "me-guard")
    both = await shopper_token(http, base_url, partner, card_number="79927398713", qr_token=None)
    assert both.status_code in (400, 404)  # the card is unknown (the null is an absent field)
    neither = await shopper_token(http, base_url, partner)
    assert neither.status_code == 400


async def test_blocked_cards_are_refused_at_earn_burn_and_sessions_and_replacement_keeps_points(
    base_url: str, http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    partner = await onboard(http, signing_key, "me-blocks")
    support = admin_headers(signing_key, Role.SUPPORT)
    async with partner.client(base_url) as client:
        card = (await client.enroll()).card_number
        await client.purchase(purchase(card, 5_000))

        blocked = await http.post(
            f"/v1/operator/cards/{card}/block", json={"reason": "stolen"}, headers=support
        )
        assert blocked.status_code == 200, blocked.text
        assert blocked.json()["status"] == "blocked"

        with pytest.raises(CoalitionError) as earn:
            await client.purchase(purchase(card, 1_000))
        assert (earn.value.status, earn.value.code) == (422, "card_blocked")
        with pytest.raises(CoalitionError) as burn:
            await client.redeem(
                RedemptionRequest(
                    partner_ref=f"r-{uuid.uuid4().hex[:20]}", card_number=card, points=10
                )
            )
        assert (burn.value.status, burn.value.code) == (422, "card_blocked")
        session = await shopper_token(http, base_url, partner, card_number=card)
        assert (session.status_code, session.json()["code"]) == (422, "card_blocked")

        # An auditor may not change cards.
        auditor = admin_headers(signing_key, Role.AUDITOR)
        forbidden = await http.post(
            f"/v1/operator/cards/{card}/unblock", json={"reason": "x"}, headers=auditor
        )
        assert forbidden.status_code == 403

        replaced = await http.post(
            f"/v1/operator/cards/{card}/replace", json={"reason": "lost"}, headers=support
        )
        assert replaced.status_code == 201, replaced.text
        new_card = replaced.json()["new_card"]["card_number"]
        earned = await client.purchase(purchase(new_card, 1_000))
        assert earned.balance == 50 + 10

        with pytest.raises(CoalitionError) as old:
            await client.purchase(purchase(card, 1_000))
        assert old.value.code == "card_blocked"


async def test_a_merge_over_http_and_erasure_ends_the_session(
    base_url: str, http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    partner = await onboard(http, signing_key, "me-merge")
    admin = admin_headers(signing_key)
    async with partner.client(base_url) as client:
        first = await client.enroll()
        second = await client.enroll()
        await client.purchase(purchase(first.card_number, 3_000))
        await client.purchase(purchase(second.card_number, 4_000))

    absorbed_session = (
        await shopper_token(http, base_url, partner, card_number=second.card_number)
    ).json()["access_token"]
    merged = await http.post(
        "/v1/operator/shopper-merges",
        json={
            "survivor_shopper_id": first.shopper_id,
            "absorbed_shopper_id": second.shopper_id,
            "reason": "same person",
        },
        headers=admin,
    )
    assert merged.status_code == 201, merged.text
    assert merged.json()["points_moved"] == 40
    # The absorbed shopper's session now shows the survivor's wallet.
    balance = await http.get("/v1/me/balance", headers=bearer(absorbed_session))
    assert balance.json()["balance"] == 70

    erased = await http.post("/v1/me/erasure", headers=bearer(absorbed_session))
    assert erased.status_code == 200, erased.text
    assert erased.json()["shopper_id"] == first.shopper_id
    after = await http.get("/v1/me", headers=bearer(absorbed_session))
    assert (after.status_code, after.json()["code"]) == (410, "shopper_erased")
    session = await shopper_token(http, base_url, partner, card_number=first.card_number)
    assert session.json()["code"] == "card_blocked"


async def test_a_purchase_that_qualifies_upgrades_at_once_and_the_next_one_earns_the_bonus(
    base_url: str, http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    partner = await onboard(http, signing_key, "me-tiers")
    async with partner.client(base_url) as client:
        card = (await client.enroll()).card_number
        await client.purchase(purchase(card, 60_000))  # 600.00 spent: Silver
        session = (await shopper_token(http, base_url, partner, card_number=card)).json()
        tier = (await http.get("/v1/me/tier", headers=bearer(session["access_token"]))).json()
        assert (tier["tier"], tier["multiplier_bps"], tier["next_tier"]) == (
            "silver",
            12_500,
            "gold",
        )
        assert tier["review_at"] is not None

        earned = await client.purchase(purchase(card, 10_000))  # 100 base points
        bonus = [item for item in earned.breakdown if item.kind == "tier_bonus"]
        assert [item.points for item in bonus] == [25]
