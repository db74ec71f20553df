"""The checkout profile over HTTP, fed by real purchases through the partner API."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from contracts.partners import EnrollRequest, Line, PurchaseRequest
from gateway.tokens import SigningKey
from shoppers import segments
from tests.support.generated_network import fold_all
from tests.support.partner_network import Onboarded, onboard, signed


async def _profile(
    http: httpx.AsyncClient, base_url: str, who: Onboarded, card: str
) -> httpx.Response:
    path = f"/v1/shoppers/{card}/profile"
    return await http.get(path, headers=signed(who, "GET", f"{base_url}{path}"))


@pytest.fixture(scope="module")
async def cards(
    http: httpx.AsyncClient, base_url: str, signing_key: SigningKey, pool: asyncpg.Pool
) -> tuple[Onboarded, Onboarded, str, str]:
    """Two shoppers who buy groceries at B and fuel at A; one shares data, one does not."""
    shop_a = await onboard(http, signing_key, "profile-a")
    shop_b = await onboard(http, signing_key, "profile-b")
    numbers = []
    async with shop_a.client(base_url) as a, shop_b.client(base_url) as b:
        for n in range(2):
            card = (await a.enroll(EnrollRequest())).card_number
            numbers.append(card)
            for shop, category, amount in ((a, "fuel", 5_000), (b, "grocery", 20_000)):
                await shop.purchase(
                    PurchaseRequest(
                        partner_ref=f"p-{n}-{category}",
                        card_number=card,
                        amount_minor=amount,
                        currency="EUR",
                        lines=[Line(sku="x", amount_minor=amount, category=category)],
                    )
                )
    sharing, private = numbers
    await pool.execute(
        "INSERT INTO shopper_consents (shopper_id, data_sharing)"
        " SELECT shopper_id, card_number = $1 FROM shopper_cards WHERE card_number = ANY($2)",
        sharing, numbers,
    )  # fmt: skip
    await fold_all(pool)
    await segments.refresh_segments(pool, now=datetime.now(UTC), interval_s=0)
    return shop_a, shop_b, sharing, private


async def test_a_consenting_shopper_gets_a_next_best_offer_from_elsewhere(
    http: httpx.AsyncClient, base_url: str, cards: tuple[Onboarded, Onboarded, str, str]
) -> None:
    shop_a, _, sharing, _ = cards
    answer = await _profile(http, base_url, shop_a, sharing)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["balance"] > 0
    assert body["tier"]["tier"] == "member"
    assert body["data_sharing"] is True
    assert body["next_best_offer"] == {"category": "grocery"}  # bought at B, never at A
    assert any(s.startswith("affinity:") for s in body["segments"])
    assert isinstance(body["offers"], list)
    assert body["points_expiring_total"] == sum(p["points"] for p in body["points_expiring"])


async def test_without_consent_no_hint_and_no_cross_partner_segment(
    http: httpx.AsyncClient, base_url: str, cards: tuple[Onboarded, Onboarded, str, str]
) -> None:
    shop_a, _, _, private = cards
    body = (await _profile(http, base_url, shop_a, private)).json()
    assert body["data_sharing"] is False
    assert body["next_best_offer"] is None
    assert set(body["segments"]) <= {"birthday_month"}


async def test_the_hint_is_never_a_category_bought_here(
    http: httpx.AsyncClient, base_url: str, cards: tuple[Onboarded, Onboarded, str, str]
) -> None:
    _, shop_b, sharing, _ = cards
    body = (await _profile(http, base_url, shop_b, sharing)).json()
    assert body["next_best_offer"] == {"category": "fuel"}


async def test_an_unknown_card_answers_404_and_unsigned_calls_401(
    http: httpx.AsyncClient, base_url: str, cards: tuple[Onboarded, Onboarded, str, str]
) -> None:
    shop_a = cards[0]
    assert (await _profile(http, base_url, shop_a, "7999999999999999")).status_code == 404
    assert (await http.get(f"/v1/shoppers/{cards[2]}/profile")).status_code == 401
