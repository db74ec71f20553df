"""Program rules over HTTP: earn rules and campaigns by signed partner calls, network campaigns
by operators (admin), the purchase breakdown on the wire, enrollment with a referral code."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from gateway.tokens import Role, SigningKey
from shoppers import referrals
from tests.support.partner_network import Onboarded, admin_headers, onboard, signed

_keys = itertools.count(1)


async def send(
    http: httpx.AsyncClient, base_url: str, who: Onboarded, method: str, path: str, body: Any = None
) -> httpx.Response:
    raw = b"" if body is None else json.dumps(body).encode()
    key = f"k-{next(_keys)}" if method == "POST" else None
    headers = signed(who, method, f"{base_url}{path}", raw, idempotency_key=key)
    return await http.request(method, path, content=raw, headers=headers)


def window() -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(days=1)).isoformat(),
    }


@pytest.fixture(scope="module")
async def shop(http: httpx.AsyncClient, signing_key: SigningKey) -> Onboarded:
    return await onboard(http, signing_key, "camp-shop")


@pytest.fixture(scope="module")
async def rival(http: httpx.AsyncClient, signing_key: SigningKey) -> Onboarded:
    return await onboard(http, signing_key, "camp-rival")


async def test_rules_and_campaigns_show_in_the_purchase_breakdown(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded, signing_key: SigningKey
) -> None:
    rules = await send(
        http,
        base_url,
        shop,
        "POST",
        "/v1/earn-rules",
        {"categories": [{"category": "fresh", "multiplier_bps": 20_000}]},
    )
    assert rules.status_code == 200, rules.text
    assert (await send(http, base_url, shop, "GET", "/v1/earn-rules")).json()["categories"] == [
        {"category": "fresh", "multiplier_bps": 20_000, "excluded": False}
    ]
    partner_campaign = await send(
        http,
        base_url,
        shop,
        "POST",
        "/v1/campaigns",
        {
            "name": "fresh week",
            **window(),
            "conditions": {"category": "fresh"},
            "reward": {"bonus_points": 5},
            "budget_points": 1_000,
            "per_shopper_cap_points": 50,
        },
    )
    assert partner_campaign.status_code == 201, partner_campaign.text
    network = await http.post(
        "/v1/operator/campaigns",
        json={
            "name": "network welcome",
            **window(),
            "reward": {"bonus_points": 3},
            "budget_points": 1_000,
            "per_shopper_cap_points": 3,
        },
        headers=admin_headers(signing_key),
    )
    assert network.status_code == 201, network.text
    assert network.json()["partner_id"] is None
    enrolled = await send(http, base_url, shop, "POST", "/v1/shoppers", {})
    card = enrolled.json()["card_number"]
    basket = {
        "card_number": card,
        "amount_minor": 2_000,
        "lines": [{"sku": "apple", "category": "fresh", "amount_minor": 1_000}],
    }
    quote = await send(http, base_url, shop, "POST", "/v1/quotes", basket)
    purchase = await send(
        http,
        base_url,
        shop,
        "POST",
        "/v1/purchases",
        {**basket, "partner_ref": "camp-1", "currency": "EUR"},
    )
    assert purchase.status_code == 201, purchase.text
    body = purchase.json()
    assert [(i["kind"], i["points"], i["paid_by"]) for i in body["breakdown"]] == [
        ("base", 30, "partner"),
        ("campaign", 5, "partner"),
        ("campaign", 3, "network"),
    ]
    assert body["points_earned"] == 38 == sum(i["points"] for i in body["breakdown"])
    assert body["balance"] == 38
    assert quote.json()["breakdown"] == body["breakdown"]
    assert quote.json()["points"] == 38


async def test_campaign_routes_keep_partners_apart_and_network_ones_need_admin(
    http: httpx.AsyncClient,
    base_url: str,
    shop: Onboarded,
    rival: Onboarded,
    signing_key: SigningKey,
) -> None:
    created = await send(
        http,
        base_url,
        shop,
        "POST",
        "/v1/campaigns",
        {
            "name": "mine",
            **window(),
            "reward": {"multiplier_bps": 15_000},
            "budget_points": 10,
            "per_shopper_cap_points": 10,
        },
    )
    campaign_id = created.json()["id"]
    assert (
        await send(http, base_url, rival, "GET", f"/v1/campaigns/{campaign_id}")
    ).status_code == 404
    ended_by_rival = await send(http, base_url, rival, "POST", f"/v1/campaigns/{campaign_id}/end")
    assert ended_by_rival.status_code == 404
    ended = await send(http, base_url, shop, "POST", f"/v1/campaigns/{campaign_id}/end")
    assert ended.status_code == 200, ended.text
    assert ended.json()["ended_at"] is not None
    listed = await send(http, base_url, shop, "GET", "/v1/campaigns?limit=1")
    assert [c["id"] for c in listed.json()["items"]] == [campaign_id]
    assert listed.json()["next_cursor"] is not None
    support = await http.post(
        "/v1/operator/campaigns",
        json={
            "name": "x",
            **window(),
            "reward": {"bonus_points": 1},
            "budget_points": 1,
            "per_shopper_cap_points": 1,
        },
        headers=admin_headers(signing_key, Role.SUPPORT),
    )
    assert support.status_code == 403
    invalid = await send(
        http,
        base_url,
        shop,
        "POST",
        "/v1/campaigns",
        {
            "name": "two rewards",
            **window(),
            "reward": {"bonus_points": 1, "multiplier_bps": 20_000},
            "budget_points": 1,
            "per_shopper_cap_points": 1,
        },
    )
    assert invalid.status_code == 422
    assert invalid.json()["code"] == "campaign_invalid"


async def test_enrollment_with_a_referral_code_and_refusals(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded, database_url: str
) -> None:
    referrer = (await send(http, base_url, shop, "POST", "/v1/shoppers", {})).json()
    conn = await asyncpg.connect(database_url)
    try:
        code = await referrals.code_for(conn, referrer["shopper_id"])
    finally:
        await conn.close()
    friend = await send(http, base_url, shop, "POST", "/v1/shoppers", {"referral_code": code})
    assert friend.status_code == 201, friend.text
    unknown = await send(
        http, base_url, shop, "POST", "/v1/shoppers", {"referral_code": "ZZZZ9999"}
    )
    assert unknown.status_code == 422
    assert unknown.json()["code"] == "referral_code_unknown"
    purchase = await send(
        http,
        base_url,
        shop,
        "POST",
        "/v1/purchases",
        {
            "partner_ref": "ref-1",
            "card_number": friend.json()["card_number"],
            "amount_minor": referrals.QUALIFYING_PURCHASE_MINOR,
            "currency": "EUR",
        },
    )
    kinds = [i["kind"] for i in purchase.json()["breakdown"]]
    assert "referral" in kinds
