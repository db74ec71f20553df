"""A group's steps lock its wallets in one order (gateway/idempotency.py `_lock_wallets`).

A group commit runs its purchases in one set-based step and its redemptions and holds in
another, each step locking its own shoppers' wallets in shopper order. Two groups whose
purchase steps hold one shopper each and whose burn steps want the other's is a deadlock, which
PostgreSQL breaks by failing one step (its calls then run one by one, or alone after the
commit). Here concurrent rounds of mixed calls over a few shared shoppers, in opposite orders,
with refunds of the previous round's purchases (their wallets found by the original's
partner_ref), must all run in their set-based steps: no step fails, no call runs alone.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable

import asyncpg
import httpx
import pytest

from contracts.partners import PurchaseRequest
from gateway import metrics
from gateway.tokens import SigningKey
from ledger import verify
from tests.support.partner_network import Onboarded, onboard, signed

SHOPPERS = 6
ROUNDS = 6
CALLS_PER_ROUND = 48
FUNDED_POINTS = 1_000
PURCHASE_MINOR = 1_000  # 10 points each
REDEEMED_POINTS = 2
HELD_POINTS = 1
SEED = 18
REFUNDS_PER_ROUND = 8
RATE_LIMIT_PER_S = 1_000


@pytest.fixture(scope="module")
async def shops(http: httpx.AsyncClient, signing_key: SigningKey) -> list[Onboarded]:
    # Each round sends every call at once: above the default 100 calls per second per key.
    return [
        await onboard(http, signing_key, f"lock-order-{n}", rate_limit_per_s=RATE_LIMIT_PER_S)
        for n in range(2)
    ]


@pytest.fixture(scope="module")
async def cards(base_url: str, shops: list[Onboarded]) -> list[str]:
    async with shops[0].client(base_url) as client:
        numbers = [(await client.enroll()).card_number for _ in range(SHOPPERS)]
        for n, card in enumerate(numbers):
            funded = PurchaseRequest(
                partner_ref=f"lo-fund-{n}",
                card_number=card,
                amount_minor=FUNDED_POINTS * 100,
                currency="EUR",
            )
            await client.purchase(funded)
    return numbers


Call = tuple[int, str, str, bytes]  # shop, path, key, body
Bought = tuple[int, str, str, int]  # shop, partner_ref, card, points earned


def planned(
    cards: list[str], round_no: int, rng: random.Random, refundable: list[Bought]
) -> list[Call]:
    """Purchases walk the shoppers up, burns walk them down, refunds take back earlier
    purchases, shuffled: groups overlap."""
    calls: list[Call] = []
    for n, (shop, ref, _, _) in enumerate(refundable[:REFUNDS_PER_ROUND]):
        key = f"lo-{round_no}-r{n}"
        refund = {"partner_ref": key, "original_partner_ref": ref}
        calls.append((shop, "/v1/refunds", key, json.dumps(refund).encode()))
    for n in range(CALLS_PER_ROUND):
        key = f"lo-{round_no}-{n}"
        up, down = cards[n % SHOPPERS], cards[SHOPPERS - 1 - n % SHOPPERS]
        fields: dict[str, object]
        if n % 3 == 0:
            path = "/v1/purchases"
            fields = {"partner_ref": key, "card_number": up, "amount_minor": PURCHASE_MINOR}
            fields["currency"] = "EUR"
        elif n % 3 == 1:
            path = "/v1/redemptions"
            fields = {"partner_ref": key, "card_number": down, "points": REDEEMED_POINTS}
        else:
            path = "/v1/holds"
            fields = {"partner_ref": key, "card_number": down, "points": HELD_POINTS}
        calls.append((n % 2, path, key, json.dumps(fields).encode()))
    rng.shuffle(calls)
    return calls


def _post(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded, call: Call
) -> Awaitable[httpx.Response]:
    _, path, key, body = call
    headers = signed(shop, "POST", f"{base_url}{path}", body, idempotency_key=key)
    return http.post(path, content=body, headers=headers)


async def test_mixed_groups_over_shared_shoppers_never_deadlock(
    http: httpx.AsyncClient,
    base_url: str,
    shops: list[Onboarded],
    cards: list[str],
    pool: asyncpg.Pool,
) -> None:
    rng = random.Random(SEED)
    failed_before = metrics.GROUP_COMMIT_TOGETHER_FAILED._value.get()
    alone_before = metrics.GROUP_COMMIT_ALONE._value.get()
    together_before = metrics.GROUP_COMMIT_TOGETHER._value.get()
    available = dict.fromkeys(cards, FUNDED_POINTS)
    held = dict.fromkeys(cards, 0)
    refundable: list[Bought] = []
    for round_no in range(ROUNDS):
        calls = planned(cards, round_no, rng, refundable)
        bought = {ref: (card, points) for _, ref, card, points in refundable}
        refundable = []
        answers = await asyncio.gather(
            *(_post(http, base_url, shops[call[0]], call) for call in calls)
        )
        for call, answer in zip(calls, answers, strict=True):
            assert answer.status_code == 201, answer.text
            fields = json.loads(call[3])
            if call[1] == "/v1/refunds":
                card, points = bought[str(fields["original_partner_ref"])]
                available[card] -= points
                continue
            card = str(fields["card_number"])
            if call[1] == "/v1/purchases":
                earned = int(answer.json()["points_earned"])
                available[card] += earned
                refundable.append((call[0], str(fields["partner_ref"]), card, earned))
                continue
            available[card] -= int(fields["points"])
            if call[1] == "/v1/holds":
                held[card] += int(fields["points"])

    assert metrics.GROUP_COMMIT_TOGETHER._value.get() > together_before  # groups formed ...
    assert metrics.GROUP_COMMIT_TOGETHER_FAILED._value.get() == failed_before  # ... no step lost
    assert metrics.GROUP_COMMIT_ALONE._value.get() == alone_before  # ... and no call ran alone
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT c.card_number, w.available, w.held FROM shopper_cards c"
            " JOIN ledger.wallet w USING (shopper_id) WHERE c.card_number = ANY($1::text[])",
            cards,
        )
        wallets = {r["card_number"]: (r["available"], r["held"]) for r in rows}
        assert wallets == {card: (available[card], held[card]) for card in cards}
        assert await verify.verify(conn) == []
