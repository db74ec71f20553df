"""Idempotency-Key (Stripe semantics) and partner_ref uniqueness, over signed HTTP."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from contracts.partners import PurchaseRequest
from contracts.sdk import CoalitionError
from gateway.tokens import SigningKey
from tests.support.partner_network import Onboarded, onboard, signed


@pytest.fixture(scope="module")
async def shop(http: httpx.AsyncClient, signing_key: SigningKey) -> Onboarded:
    return await onboard(http, signing_key, "idem-shop")


@pytest.fixture(scope="module")
async def card(base_url: str, shop: Onboarded) -> str:
    async with shop.client(base_url) as client:
        return (await client.enroll()).card_number


def purchase_body(card: str, ref: str, amount_minor: int = 1_000) -> bytes:
    return json.dumps(
        {"partner_ref": ref, "card_number": card, "amount_minor": amount_minor, "currency": "EUR"}
    ).encode()


async def post(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded, body: bytes, key: str
) -> httpx.Response:
    headers = signed(shop, "POST", f"{base_url}/v1/purchases", body, idempotency_key=key)
    return await http.post("/v1/purchases", content=body, headers=headers)


async def balance(base_url: str, shop: Onboarded, card: str) -> int:
    async with shop.client(base_url) as client:
        return (await client.shopper(card)).balance


async def test_a_retry_replays_the_stored_response_without_a_second_effect(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded, card: str
) -> None:
    before = await balance(base_url, shop, card)
    body = purchase_body(card, "idem-1")
    first = await post(http, base_url, shop, body, "key-1")
    again = await post(http, base_url, shop, body, "key-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotency-replayed"] == "true"
    assert "idempotency-replayed" not in first.headers
    assert await balance(base_url, shop, card) == before + 10


async def test_the_same_key_with_another_body_is_a_mismatch(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded, card: str
) -> None:
    assert (
        await post(http, base_url, shop, purchase_body(card, "idem-2"), "key-2")
    ).status_code == 201
    other = await post(http, base_url, shop, purchase_body(card, "idem-2", 5_000), "key-2")
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_mismatch"


async def test_a_partner_ref_reused_under_another_key_is_a_conflict(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded, card: str
) -> None:
    before = await balance(base_url, shop, card)
    assert (
        await post(http, base_url, shop, purchase_body(card, "idem-3"), "key-3a")
    ).status_code == 201
    again = await post(http, base_url, shop, purchase_body(card, "idem-3"), "key-3b")
    assert again.status_code == 409
    assert again.json()["code"] == "partner_ref_conflict"
    assert await balance(base_url, shop, card) == before + 10


async def test_concurrent_calls_with_one_key_apply_once(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded, card: str
) -> None:
    before = await balance(base_url, shop, card)
    body = purchase_body(card, "idem-4")
    answers = await asyncio.gather(*(post(http, base_url, shop, body, "key-4") for _ in range(12)))
    statuses = [a.status_code for a in answers]
    assert set(statuses) <= {201, 409}, statuses
    assert all(
        a.json()["code"] == "idempotency_in_progress" for a in answers if a.status_code == 409
    )
    fresh = [a for a in answers if a.status_code == 201 and "idempotency-replayed" not in a.headers]
    assert len(fresh) == 1
    assert await balance(base_url, shop, card) == before + 10


async def test_concurrent_calls_with_one_partner_ref_apply_once(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded, card: str
) -> None:
    before = await balance(base_url, shop, card)
    body = purchase_body(card, "idem-5")
    answers = await asyncio.gather(
        *(post(http, base_url, shop, body, f"key-5-{n}") for n in range(8))
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses.count(201) == 1, [a.text for a in answers]
    codes = {a.json()["code"] for a in answers if a.status_code != 201}
    assert codes == {"partner_ref_conflict"}, codes
    assert await balance(base_url, shop, card) == before + 10


async def test_the_sdk_reuses_its_key_across_retries_and_reports_conflicts(
    base_url: str, shop: Onboarded, card: str
) -> None:
    request = PurchaseRequest(
        partner_ref="idem-6", card_number=card, amount_minor=700, currency="EUR"
    )
    async with shop.client(base_url) as client:
        first = await client.purchase(request, idempotency_key="sdk-6")
        replay = await client.purchase(request, idempotency_key="sdk-6")
        assert client.last_replayed
        with pytest.raises(CoalitionError) as refused:
            await client.purchase(request)
    assert replay == first
    assert (refused.value.status, refused.value.code) == (409, "partner_ref_conflict")
