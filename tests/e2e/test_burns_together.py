"""A group commit's redemptions and holds written together (gateway/idempotency.py `Many`,
partners.burn_many, migration 0098): concurrent signed burns, each answered as alone.

Forty calls arrive at once, so the server groups them and writes each group's redemptions,
and its holds, in one call each. Among them: shoppers with several burns, an unknown card, a
redemption larger than the balance, a partner_ref used by two calls. Every call must answer
what it answers alone, the wallets must add up, the books must verify, and replays must
answer the stored responses.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY

from contracts.partners import HoldRequest, PurchaseRequest
from gateway import metrics
from gateway.tokens import SigningKey
from infra.db import Conn
from ledger import verify
from shoppers import luhn
from tests.support.partner_network import Onboarded, onboard, signed

CALLS = 40
FUNDED_POINTS = 100  # one purchase of 100.00 at 1 point per 1.00
REDEEMED_POINTS = 3
HELD_POINTS = 2
UNKNOWN_CARD = "999999999998" + luhn.check_digit("999999999998")
Call = tuple[int, str, str, bytes, int, str | None]  # shop, path, key, body, status, code


@pytest.fixture(scope="module")
async def shops(http: httpx.AsyncClient, signing_key: SigningKey) -> list[Onboarded]:
    return [await onboard(http, signing_key, f"burns-{n}") for n in range(2)]


@pytest.fixture(scope="module")
async def cards(base_url: str, shops: list[Onboarded]) -> list[str]:
    async with shops[0].client(base_url) as client:
        numbers = [(await client.enroll()).card_number for _ in range(8)]
        for n, card in enumerate(numbers):
            request = PurchaseRequest(
                partner_ref=f"fund-{n}",
                card_number=card,
                amount_minor=FUNDED_POINTS * 100,
                currency="EUR",
            )
            await client.purchase(request)
    return numbers


@pytest.fixture
async def pool(database_url: str, base_url: str) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert created is not None  # base_url: the server migrated the database
    try:
        yield created
    finally:
        await created.close()


def planned(cards: list[str]) -> list[Call]:
    calls: list[Call] = []
    for n in range(CALLS):
        shop, key, card = n % 2, f"bt-{n}", cards[n % 8]  # eight shoppers, five burns each
        path, points = ("/v1/redemptions", REDEEMED_POINTS) if n % 4 < 2 else ("/v1/holds", 2)
        fields = {"partner_ref": key, "card_number": card, "points": points}
        status, code = 201, None
        if n == 6:
            fields["card_number"], status, code = UNKNOWN_CARD, 404, "card_unknown"
        elif n == 9:
            fields["points"], status, code = 10_000, 422, "insufficient_points"
        elif n == 13:  # the ref of call 1, same shop: one of the two is a conflict
            fields["partner_ref"], status, code = "bt-1", 409, "partner_ref_conflict"
        calls.append((shop, path, key, json.dumps(fields).encode(), status, code))
    return calls


def _written_together() -> float:
    value = REGISTRY.get_sample_value(
        "coalition_ledger_operation_seconds_count", {"operation": "burn_many"}
    )
    return value or 0.0


async def test_concurrent_burns_answer_as_alone_and_go_together(
    http: httpx.AsyncClient,
    base_url: str,
    shops: list[Onboarded],
    cards: list[str],
    pool: asyncpg.Pool,
) -> None:
    calls = planned(cards)
    together_before = _written_together()
    failed_before = metrics.GROUP_COMMIT_TOGETHER_FAILED._value.get()
    answers = await asyncio.gather(
        *(
            _post(http, base_url, shops[shop], path, key, body)
            for shop, path, key, body, _, _ in calls
        )
    )

    # Calls 1 and 13 share a ref: whichever committed first is the redemption.
    assert sorted([answers[1].status_code, answers[13].status_code]) == [201, 409]
    for n, ((_, _, _, _, status, code), answer) in enumerate(zip(calls, answers, strict=True)):
        if n in (1, 13):
            continue
        assert answer.status_code == status, (n, answer.text)
        if code is not None:
            assert answer.json()["code"] == code, (n, answer.text)
    assert _written_together() > together_before  # partner_*_write_many ran ...
    assert metrics.GROUP_COMMIT_TOGETHER_FAILED._value.get() == failed_before  # ... and worked

    # Each shopper's wallet: funded, less what was redeemed and what is held.
    available = dict.fromkeys(cards, FUNDED_POINTS)
    held = dict.fromkeys(cards, 0)
    for (_, path, _, body, _, _), answer in zip(calls, answers, strict=True):
        if answer.status_code != 201:
            continue
        fields = json.loads(body)
        available[fields["card_number"]] -= fields["points"]
        if path == "/v1/holds":
            held[fields["card_number"]] += fields["points"]
            assert answer.json()["status"] == "open"
        else:
            assert answer.json()["points_redeemed"] == fields["points"]
            assert answer.json()["value_minor"] == fields["points"] * 8_000 // 10_000
    async with pool.acquire() as conn:
        wallets = await _wallets(conn, cards)
        assert await verify.verify(conn) == []
        # Each answer names the call's own record (no answer went to a neighbour).
        for (_, path, key, body, _, _), answer in zip(calls, answers, strict=True):
            if answer.status_code != 201:
                continue
            kind = "hold" if path == "/v1/holds" else "redemption"
            answered_id = answer.json()["hold_id" if kind == "hold" else "transaction_id"]
            record = await conn.fetchrow(
                "SELECT partner_ref, kind, points, idempotency_key FROM partner_transactions"
                " WHERE id = $1::uuid",
                answered_id,
            )
            assert record is not None, answer.text
            expected_ref = json.loads(body)["partner_ref"]
            points = json.loads(body)["points"]
            assert tuple(record) == (expected_ref, kind, points, key), answer.text
    assert wallets == {card: (available[card], held[card]) for card in cards}

    # Each call's record replays its answer (new signature, same key and body).
    created = [n for n, answer in enumerate(answers) if answer.status_code == 201]
    replays = await asyncio.gather(
        *(
            _post(http, base_url, shops[calls[n][0]], calls[n][1], calls[n][2], calls[n][3])
            for n in created
        )
    )
    for n, replay in zip(created, replays, strict=True):
        assert replay.status_code == 201, replay.text
        assert replay.headers["Idempotency-Replayed"] == "true"
        assert replay.json() == answers[n].json()


async def test_concurrent_captures_go_together_and_a_second_capture_is_refused(
    http: httpx.AsyncClient,
    base_url: str,
    shops: list[Onboarded],
    cards: list[str],
    pool: asyncpg.Pool,
) -> None:
    async with shops[1].client(base_url) as client:
        holds = [
            await client.hold(HoldRequest(partner_ref=f"cap-{n}", card_number=card, points=10))
            for n, card in enumerate(cards[:6])
        ]
    captures = [(f"/v1/holds/{h.hold_id}/capture", f"cap-key-{n}") for n, h in enumerate(holds)]
    captures.append((captures[0][0], "cap-key-again"))  # the first hold, captured twice
    calls = [(path, key, b"{}") for path, key in captures] + [
        ("/v1/redemptions", f"cap-rd-{n}", _redemption_body(f"cap-rd-{n}", card))
        for n, card in enumerate(cards[:6])
    ]
    together_before = _written_together()
    failed_before = metrics.GROUP_COMMIT_TOGETHER_FAILED._value.get()
    async with pool.acquire() as conn:
        before = await _wallets(conn, cards[:6])
    answers = await asyncio.gather(
        *(_post(http, base_url, shops[1], path, key, body) for path, key, body in calls)
    )

    # The first hold: one capture answers 200, the other hold_not_open.
    first = sorted([answers[0].status_code, answers[6].status_code])
    assert first == [200, 409], (answers[0].text, answers[6].text)
    refused = answers[0] if answers[0].status_code == 409 else answers[6]
    assert refused.json()["code"] == "hold_not_open"
    for n in range(1, 6):
        assert answers[n].status_code == 200, answers[n].text
        assert answers[n].json()["hold_id"] == holds[n].hold_id
        assert (answers[n].json()["status"], answers[n].json()["points_captured"]) == (
            "captured",
            10,
        )
    assert [a.status_code for a in answers[7:]] == [201] * 6
    assert _written_together() > together_before
    assert metrics.GROUP_COMMIT_TOGETHER_FAILED._value.get() == failed_before
    async with pool.acquire() as conn:
        after = await _wallets(conn, cards[:6])
        assert await verify.verify(conn) == []
    # Each capture took its hold's 10 held points; each redemption 1 available point.
    assert after == {card: (available - 1, held - 10) for card, (available, held) in before.items()}


def _post(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded, path: str, key: str, body: bytes
) -> Awaitable[httpx.Response]:
    """A POST signed now by `shop`, with `key` as its Idempotency-Key."""
    headers = signed(shop, "POST", f"{base_url}{path}", body, idempotency_key=key)
    return http.post(path, content=body, headers=headers)


async def _wallets(conn: Conn, cards: list[str]) -> dict[str, tuple[int, int]]:
    rows = await conn.fetch(
        "SELECT c.card_number, w.available, w.held FROM shopper_cards c"
        " JOIN ledger.wallet w USING (shopper_id) WHERE c.card_number = ANY($1::text[])",
        cards,
    )
    return {r["card_number"]: (r["available"], r["held"]) for r in rows}


def _redemption_body(ref: str, card: str) -> bytes:
    return json.dumps({"partner_ref": ref, "card_number": card, "points": 1}).encode()
