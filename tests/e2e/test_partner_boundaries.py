"""Tenant isolation, bad input and the rate limit: refusals are problems and change nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import httpx
import pytest

from contracts.partners import HoldRequest, PurchaseRequest
from gateway.tokens import SigningKey
from tests.support.partner_network import Onboarded, onboard, signed

PROBLEM = "application/problem+json"
COUNTED_TABLES = ("partner_transactions", "shoppers", "shopper_cards", "idempotency_records")


@pytest.fixture(scope="module")
async def shop_a(http: httpx.AsyncClient, signing_key: SigningKey) -> Onboarded:
    return await onboard(http, signing_key, "bound-a")


@pytest.fixture(scope="module")
async def shop_b(http: httpx.AsyncClient, signing_key: SigningKey) -> Onboarded:
    return await onboard(http, signing_key, "bound-b")


@pytest.fixture(scope="module")
async def card(base_url: str, shop_a: Onboarded) -> str:
    async with shop_a.client(base_url) as client:
        card_number = (await client.enroll()).card_number
        await client.purchase(
            PurchaseRequest(
                partner_ref="seed", card_number=card_number, amount_minor=10_000, currency="EUR"
            )
        )
        return card_number


async def counts(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        found = {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in COUNTED_TABLES}
        found["entries"] = await conn.fetchval("SELECT count(*) FROM ledger.entry")
        return found
    finally:
        await conn.close()


async def send(
    http: httpx.AsyncClient,
    base_url: str,
    who: Onboarded,
    method: str,
    path: str,
    body: bytes = b"",
    key: str | None = "k",
) -> httpx.Response:
    headers = signed(who, method, f"{base_url}{path}", body, idempotency_key=key)
    return await http.request(method, path, content=body, headers=headers)


async def test_another_partners_ids_answer_404(
    http: httpx.AsyncClient, base_url: str, shop_a: Onboarded, shop_b: Onboarded, card: str
) -> None:
    async with shop_a.client(base_url) as at_a:
        hold = await at_a.hold(HoldRequest(partner_ref="iso-hold", card_number=card, points=5))
        purchase = (await at_a.transactions()).items[-1]
    attempts = [
        ("GET", f"/v1/transactions/{purchase.transaction_id}", b""),
        ("GET", f"/v1/transactions/{hold.hold_id}", b""),
        ("POST", f"/v1/holds/{hold.hold_id}/capture", b"{}"),
        ("POST", f"/v1/holds/{hold.hold_id}/void", b""),
        (
            "POST",
            "/v1/refunds",
            json.dumps({"partner_ref": "iso-r", "original_partner_ref": "seed"}).encode(),
        ),
    ]
    for n, (method, path, body) in enumerate(attempts):
        response = await send(http, base_url, shop_b, method, path, body, key=f"iso-{n}")
        assert response.status_code == 404, (path, response.text)
        assert response.json()["code"] == "not_found"
    listed = await send(http, base_url, shop_b, "GET", "/v1/transactions", key=None)
    assert listed.json()["items"] == []


def purchase(card: str, **changes: Any) -> dict[str, Any]:
    return {
        "partner_ref": "bad",
        "card_number": card,
        "amount_minor": 1_000,
        "currency": "EUR",
        **changes,
    }


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            lambda card: json.dumps(purchase(card, amount_minor=-5)).encode(),
            400,
            "validation_failed",
        ),
        (
            lambda card: json.dumps(purchase(card, amount_minor=10**20)).encode(),
            400,
            "validation_failed",
        ),
        (
            lambda card: json.dumps(purchase(card, currency="USD")).encode(),
            422,
            "currency_unsupported",
        ),
        (
            lambda card: json.dumps(purchase(card, currency="euro")).encode(),
            400,
            "validation_failed",
        ),
        (lambda card: json.dumps(purchase(card, bonus=1)).encode(), 400, "validation_failed"),
        (lambda card: b'{"partner_ref": "bad", ', 400, "malformed_json"),
        (lambda card: json.dumps(purchase("4111111111111111")).encode(), 404, "card_unknown"),
        (
            lambda card: json.dumps(purchase(card, notes="x" * 70_000)).encode(),
            413,
            "body_too_large",
        ),
    ],
    ids=[
        "negative",
        "huge",
        "currency",
        "currency-shape",
        "unknown-field",
        "malformed",
        "card",
        "oversized",
    ],
)
async def test_bad_purchases_are_problems_and_change_nothing(
    http: httpx.AsyncClient,
    base_url: str,
    database_url: str,
    shop_a: Onboarded,
    card: str,
    body: Any,
    status: int,
    code: str,
) -> None:
    before = await counts(database_url)
    response = await send(
        http, base_url, shop_a, "POST", "/v1/purchases", body(card), key=f"bad-{code}"
    )
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["code"] == code
    assert "Traceback" not in response.text
    assert await counts(database_url) == before


async def test_too_few_points_is_insufficient_points(
    http: httpx.AsyncClient, base_url: str, database_url: str, shop_b: Onboarded, card: str
) -> None:
    before = await counts(database_url)
    body = json.dumps({"partner_ref": "too-many", "card_number": card, "points": 999_999}).encode()
    response = await send(http, base_url, shop_b, "POST", "/v1/redemptions", body, key="too-many")
    assert response.status_code == 422
    assert response.json()["code"] == "insufficient_points"
    assert await counts(database_url) == before


async def test_an_invalid_card_number_is_refused_at_enrollment(
    http: httpx.AsyncClient, base_url: str, shop_a: Onboarded, card: str
) -> None:
    invalid = await send(
        http,
        base_url,
        shop_a,
        "POST",
        "/v1/shoppers",
        b'{"card_number": "4111111111111112"}',
        key="e1",
    )
    taken = await send(
        http,
        base_url,
        shop_a,
        "POST",
        "/v1/shoppers",
        json.dumps({"card_number": card}).encode(),
        key="e2",
    )
    assert (invalid.status_code, invalid.json()["code"]) == (422, "card_number_invalid")
    assert (taken.status_code, taken.json()["code"]) == (409, "card_number_taken")


async def test_the_rate_limit_answers_429_with_ratelimit_headers(
    http: httpx.AsyncClient, base_url: str, signing_key: SigningKey, card: str
) -> None:
    slow = await onboard(http, signing_key, "bound-slow", rate_limit_per_s=3)
    path = f"/v1/shoppers/{card}"
    answers = await asyncio.gather(
        *(send(http, base_url, slow, "GET", path, key=None) for _ in range(8))
    )
    statuses = [a.status_code for a in answers]
    assert 1 <= statuses.count(200) <= 6, statuses  # 3 per window; the burst may span two
    limited = next(a for a in answers if a.status_code == 429)
    assert limited.json()["code"] == "rate_limited"
    assert limited.headers["ratelimit-limit"] == "3"
    assert limited.headers["ratelimit-remaining"] == "0"
    assert int(limited.headers["retry-after"]) >= 1
    allowed = next(a for a in answers if a.status_code == 200)
    assert allowed.headers["ratelimit-limit"] == "3"


async def test_quotes_post_nothing(
    http: httpx.AsyncClient, base_url: str, database_url: str, shop_a: Onboarded, card: str
) -> None:
    before = await counts(database_url)
    body = json.dumps({"amount_minor": 2_550, "card_number": card}).encode()
    response = await send(http, base_url, shop_a, "POST", "/v1/quotes", body, key="q1")
    assert response.status_code == 200, response.text
    assert response.json()["points"] == 25
    assert await counts(database_url) == before


async def test_transactions_page_with_an_opaque_cursor(
    base_url: str, shop_a: Onboarded, card: str, http: httpx.AsyncClient
) -> None:
    async with shop_a.client(base_url) as client:
        for n in range(5):
            await client.purchase(
                PurchaseRequest(
                    partner_ref=f"page-{n}", card_number=card, amount_minor=100, currency="EUR"
                )
            )
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            page = await client.transactions(cursor=cursor, limit=2)
            seen += [t.partner_ref for t in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
    assert seen[:5] == [f"page-{n}" for n in reversed(range(5))]
    assert len(seen) == len(set(seen))
    too_big = await send(http, base_url, shop_a, "GET", "/v1/transactions?limit=5000", key=None)
    forged = await send(http, base_url, shop_a, "GET", "/v1/transactions?cursor=bm9wZQ", key=None)
    assert too_big.status_code == 400
    assert (forged.status_code, forged.json()["code"]) == (400, "cursor_invalid")
