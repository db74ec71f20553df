"""A group commit's purchases written together (gateway/idempotency.py `Many`,
partners.purchase_many): concurrent signed purchases, plain and not, each answered as alone.

Forty calls arrive at once, so the server groups them (gateway/group_commit.py) and admits and
writes each group's plain purchases in a few set-based statements. Among them: a shopper with
several purchases, a purchase with a campaign bonus, an unknown card, a currency the network
does not use, a partner_ref used by two calls, a replayed nonce. Every call must answer what
it answers alone, the books must verify, and replays must answer the stored responses.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from gateway import metrics
from gateway.tokens import SigningKey
from ledger import verify
from shoppers import luhn
from tests.support import program
from tests.support.partner_network import Onboarded, onboard, signed

CALLS = 40
UNKNOWN_CARD = "999999999999" + luhn.check_digit("999999999999")


@pytest.fixture(scope="module")
async def shops(http: httpx.AsyncClient, signing_key: SigningKey) -> list[Onboarded]:
    return [await onboard(http, signing_key, f"together-{n}") for n in range(2)]


@pytest.fixture(scope="module")
async def cards(base_url: str, shops: list[Onboarded]) -> list[str]:
    async with shops[0].client(base_url) as client:
        return [(await client.enroll()).card_number for _ in range(12)]


@pytest.fixture
async def pool(database_url: str, base_url: str) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert created is not None  # base_url: the server migrated the database
    try:
        yield created
    finally:
        await created.close()


def body(card: str, ref: str, amount_minor: int, **changes: Any) -> bytes:
    fields = {"partner_ref": ref, "card_number": card, "amount_minor": amount_minor}
    return json.dumps({"currency": "EUR", **fields, **changes}).encode()


def planned(cards: list[str]) -> list[tuple[int, str, bytes, int, str | None]]:
    """(shop, idempotency key, body, status, error code) per call."""
    books = [{"sku": "b", "category": "books", "amount_minor": 500}]
    calls: list[tuple[int, str, bytes, int, str | None]] = []
    for n in range(CALLS):
        shop = n % 2
        key = f"tg-{n}"
        card = cards[n % 8]  # eight shoppers, five purchases each
        if n == 5:
            calls.append((shop, key, body(card, key, 2_000, lines=books), 201, None))
        elif n == 7:
            calls.append((shop, key, body(UNKNOWN_CARD, key, 1_000), 404, "card_unknown"))
        elif n == 11:
            calls.append((shop, key, body(card, key, 1_000, currency="USD"), 422, None))
        elif n == 13:  # the ref of call 1, same shop: one of the two is a conflict
            calls.append((shop, key, body(cards[9], "tg-1", 1_000), 409, "partner_ref_conflict"))
        else:
            calls.append((shop, key, body(card, key, 100 * (n + 1)), 201, None))
    return calls


async def test_concurrent_purchases_answer_as_alone_and_the_plain_ones_go_together(
    http: httpx.AsyncClient,
    base_url: str,
    shops: list[Onboarded],
    cards: list[str],
    pool: asyncpg.Pool,
) -> None:
    await program.campaign(pool, shops[1].partner_id, category="books", multiplier_bps=20_000)
    calls = planned(cards)
    signed_calls = [
        (
            content,
            signed(shops[shop], "POST", f"{base_url}/v1/purchases", content, idempotency_key=key),
        )
        for shop, key, content, _, _ in calls
    ]
    together_before = metrics.GROUP_COMMIT_TOGETHER._value.get()
    answers = await asyncio.gather(
        *(http.post("/v1/purchases", content=c, headers=h) for c, h in signed_calls)
    )

    # Calls 1 and 13 share a ref: whichever committed first is the purchase.
    first, second = answers[1].status_code, answers[13].status_code
    assert sorted([first, second]) == [201, 409], (answers[1].text, answers[13].text)
    for n, ((_, _, _, status, code), answer) in enumerate(zip(calls, answers, strict=True)):
        if n in (1, 13):
            continue
        assert answer.status_code == status, (n, answer.text)
        if code is not None:
            assert answer.json()["code"] == code, (n, answer.text)
    assert metrics.GROUP_COMMIT_TOGETHER._value.get() > together_before  # the set-based path

    # Points as priced (1 point per 1.00), the campaign's bonus, balances that add up.
    earned = {n: a.json()["points_earned"] for n, a in enumerate(answers) if a.status_code == 201}
    for n, points in earned.items():
        amount_minor = json.loads(calls[n][2])["amount_minor"]
        bonus = 5 if n == 5 else 0  # books 5.00 at 2x: 5 more points
        assert points == amount_minor // 100 + bonus, n
    async with pool.acquire() as conn:
        wallets = await conn.fetch(
            "SELECT c.card_number, w.available FROM shopper_cards c"
            " JOIN ledger.wallet w USING (shopper_id) WHERE c.card_number = ANY($1::text[])",
            cards,
        )
        assert await verify.verify(conn) == []
    expected: dict[str, int] = {}
    for n, points in earned.items():
        card = json.loads(calls[n][2])["card_number"]
        expected[card] = expected.get(card, 0) + points
    assert {r["card_number"]: r["available"] for r in wallets if r["available"]} == expected

    # Each call's record replays its answer (new signature, same key and body).
    replays = await asyncio.gather(
        *(
            http.post(
                "/v1/purchases",
                content=content,
                headers=signed(
                    shops[shop], "POST", f"{base_url}/v1/purchases", content, idempotency_key=key
                ),
            )
            for shop, key, content, status, _ in calls
            if status == 201
        )
    )
    originals = [a for n, a in enumerate(answers) if calls[n][3] == 201]
    for original, replay in zip(originals, replays, strict=True):
        if original.status_code == 201:
            assert replay.status_code == 201, replay.text
            assert replay.headers["Idempotency-Replayed"] == "true"
            assert replay.json() == original.json()


async def test_a_replayed_nonce_in_a_group_is_refused_and_its_neighbours_commit(
    http: httpx.AsyncClient, base_url: str, shops: list[Onboarded], cards: list[str]
) -> None:
    contents = [body(cards[10 + n % 2], f"nonce-{n}", 300) for n in range(10)]
    headers = [
        signed(shops[0], "POST", f"{base_url}/v1/purchases", c, idempotency_key=f"nonce-{n}")
        for n, c in enumerate(contents)
    ]
    first = await http.post("/v1/purchases", content=contents[0], headers=headers[0])
    assert first.status_code == 201, first.text
    answers = await asyncio.gather(
        *(
            http.post("/v1/purchases", content=c, headers=h)
            for c, h in zip(contents, headers, strict=True)
        )
    )
    assert answers[0].status_code == 401, answers[0].text  # the same signature again
    assert answers[0].json()["code"] == "nonce_reused"
    assert [a.status_code for a in answers[1:]] == [201] * 9
