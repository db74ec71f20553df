"""POST /v1/purchases/batch: end-of-day files, all-or-nothing per item, over signed HTTP."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from contracts.partners import MAX_BATCH_ITEMS
from gateway.tokens import Role, SigningKey
from ledger import verify
from tests.support.partner_network import Onboarded, admin_headers, onboard, signed

BATCH_PATH = "/v1/purchases/batch"
BATCH_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
async def shop(http: httpx.AsyncClient, signing_key: SigningKey) -> Onboarded:
    return await onboard(http, signing_key, "batch-shop")  # 1 point per 100 minor units


@pytest.fixture(scope="module")
async def other_shop(http: httpx.AsyncClient, signing_key: SigningKey) -> Onboarded:
    return await onboard(http, signing_key, "batch-other")


async def enroll(base_url: str, partner: Onboarded) -> str:
    async with partner.client(base_url) as client:
        return (await client.enroll()).card_number


def ref() -> str:
    return f"eod-{uuid.uuid4().hex[:24]}"


def item(card: str, partner_ref: str, amount_minor: int = 1_000, **extra: Any) -> dict[str, Any]:
    return {
        "partner_ref": partner_ref,
        "card_number": card,
        "amount_minor": amount_minor,
        "currency": "EUR",
        **extra,
    }


def unknown_card() -> str:
    """A Luhn-valid card number no shopper holds."""
    digits = [int(d) for d in f"9{uuid.uuid4().int % 10**14:014d}"]
    total = 0
    for position, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if position % 2 == 0 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


async def post_batch(
    http: httpx.AsyncClient,
    base_url: str,
    partner: Onboarded,
    body: bytes,
    key: str | None = None,
) -> httpx.Response:
    headers = signed(
        partner, "POST", f"{base_url}{BATCH_PATH}", body, idempotency_key=key or uuid.uuid4().hex
    )
    return await http.post(BATCH_PATH, content=body, headers=headers, timeout=BATCH_TIMEOUT_S)


def batch(*items: dict[str, Any]) -> bytes:
    return json.dumps({"items": list(items)}).encode()


async def balance(base_url: str, partner: Onboarded, card: str) -> int:
    async with partner.client(base_url) as client:
        return (await client.shopper(card)).balance


async def effects(database_url: str) -> dict[str, int]:
    """Everything a purchase leaves behind, counted."""
    conn = await asyncpg.connect(database_url)
    try:
        return {
            "entries": await conn.fetchval("SELECT count(*) FROM ledger.entry"),
            "transactions": await conn.fetchval("SELECT count(*) FROM partner_transactions"),
            "idempotency_records": await conn.fetchval("SELECT count(*) FROM idempotency_records"),
        }
    finally:
        await conn.close()


async def books_balance(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await verify.verify(conn) == []
    finally:
        await conn.close()


async def test_a_mixed_batch_posts_only_its_good_items_and_each_refusal_is_its_own(
    http: httpx.AsyncClient,
    base_url: str,
    database_url: str,
    signing_key: SigningKey,
    shop: Onboarded,
) -> None:
    alice, bob, stolen = [await enroll(base_url, shop) for _ in range(3)]
    blocked = await http.post(
        f"/v1/operator/cards/{stolen}/block",
        json={"reason": "stolen"},
        headers=admin_headers(signing_key, Role.SUPPORT),
    )
    assert blocked.status_code == 200, blocked.text
    twice = ref()
    items = [
        item(alice, ref(), 1_000),  # 10 points
        item(unknown_card(), ref()),
        item(bob, ref(), 2_500),  # 25 points
        item(stolen, ref()),
        item(alice, ref(), 1_000, currency="USD"),
        item(alice, ref(), 1_000, lines=[{"sku": "tv", "amount_minor": 5_000}]),
        item(bob, twice, 700),  # 7 points
        item(alice, twice, 900),  # the same ref for another purchase: refused
        item(alice, ref(), 4_200),  # 42 points: after four refusals, still posted
    ]
    before = await effects(database_url)

    response = await post_batch(http, base_url, shop, batch(*items))

    assert response.status_code == 201, response.text
    answer = response.json()
    statuses = [
        (r["index"], r["status"], r.get("error", {}).get("code")) for r in answer["results"]
    ]
    assert statuses == [
        (0, "created", None),
        (1, "rejected", "card_unknown"),
        (2, "created", None),
        (3, "rejected", "card_blocked"),
        (4, "rejected", "currency_unsupported"),
        (5, "rejected", "lines_exceed_amount"),
        (6, "created", None),
        (7, "rejected", "partner_ref_conflict"),
        (8, "created", None),
    ]
    assert [r["partner_ref"] for r in answer["results"]] == [i["partner_ref"] for i in items]
    assert (answer["created"], answer["rejected"], answer["duplicate"]) == (4, 5, 0)
    created = [r for r in answer["results"] if r["status"] == "created"]
    assert [r["points_earned"] for r in created] == [10, 25, 7, 42]
    assert all(sum(b["points"] for b in r["breakdown"]) == r["points_earned"] for r in created)
    assert all("transaction_id" not in r for r in answer["results"] if r["status"] == "rejected")
    assert await balance(base_url, shop, alice) == 52
    assert await balance(base_url, shop, bob) == 32
    after = await effects(database_url)
    assert after["entries"] - before["entries"] == 4
    assert after["transactions"] - before["transactions"] == 4
    assert after["idempotency_records"] - before["idempotency_records"] == 1
    await books_balance(database_url)
    async with shop.client(base_url) as client:
        for result in created:
            assert (await client.transaction(result["transaction_id"])).kind == "purchase"


async def test_a_retry_with_the_same_key_replays_the_stored_answer(
    http: httpx.AsyncClient, base_url: str, database_url: str, shop: Onboarded
) -> None:
    card = await enroll(base_url, shop)
    body = batch(item(card, ref(), 3_000), item(unknown_card(), ref()))
    key = f"file-{uuid.uuid4().hex}"
    first = await post_batch(http, base_url, shop, body, key)
    before = await effects(database_url)

    again = await post_batch(http, base_url, shop, body, key)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotency-replayed"] == "true"
    assert await effects(database_url) == before
    assert await balance(base_url, shop, card) == 30
    other = await post_batch(http, base_url, shop, batch(item(card, ref())), key)
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_mismatch")


async def test_re_uploading_a_file_answers_duplicates_with_the_original_ids_and_posts_nothing(
    http: httpx.AsyncClient, base_url: str, database_url: str, shop: Onboarded
) -> None:
    card = await enroll(base_url, shop)
    items = [item(card, ref(), 1_000 * (n + 1)) for n in range(5)]
    first = (await post_batch(http, base_url, shop, batch(*items))).json()
    before = await effects(database_url)
    # The store's next file repeats the day's lines and adds one; another one reuses a
    # reference for a different purchase (a real mistake, not a re-upload).
    late = item(card, ref(), 500)
    reused = {**items[0], "amount_minor": 9_999}

    second = await post_batch(http, base_url, shop, batch(*items, late, reused))

    assert second.status_code == 201, second.text
    answer = second.json()
    assert [r["status"] for r in answer["results"]] == ["duplicate"] * 5 + [
        "created",
        "rejected",
    ]
    assert [r["transaction_id"] for r in answer["results"][:5]] == [
        r["transaction_id"] for r in first["results"]
    ]
    assert all("points_earned" not in r for r in answer["results"][:5])
    assert answer["results"][6]["error"]["code"] == "partner_ref_conflict"
    assert (answer["created"], answer["rejected"], answer["duplicate"]) == (1, 1, 5)
    after = await effects(database_url)
    assert after["entries"] - before["entries"] == 1
    assert after["transactions"] - before["transactions"] == 1
    assert await balance(base_url, shop, card) == 150 + 5
    await books_balance(database_url)


async def test_a_batch_item_and_a_single_purchase_share_the_partner_ref_scope(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded
) -> None:
    card = await enroll(base_url, shop)
    single_ref, batch_ref = ref(), ref()
    single = item(card, single_ref, 2_000)
    async with shop.client(base_url) as client:
        headers = signed(
            shop,
            "POST",
            f"{base_url}/v1/purchases",
            json.dumps(single).encode(),
            idempotency_key=uuid.uuid4().hex,
        )
        posted = await http.post("/v1/purchases", content=json.dumps(single), headers=headers)
        assert posted.status_code == 201, posted.text

        answer = (
            await post_batch(http, base_url, shop, batch(single, item(card, batch_ref)))
        ).json()
        assert answer["results"][0]["status"] == "duplicate"
        assert answer["results"][0]["transaction_id"] == posted.json()["transaction_id"]

        body = json.dumps(item(card, batch_ref)).encode()
        headers = signed(
            shop, "POST", f"{base_url}/v1/purchases", body, idempotency_key=uuid.uuid4().hex
        )
        again = await http.post("/v1/purchases", content=body, headers=headers)
        assert (again.status_code, again.json()["code"]) == (409, "partner_ref_conflict")
        assert (await client.shopper(card)).balance == 20 + 10


async def test_more_than_the_limit_is_refused_whole_and_posts_nothing(
    http: httpx.AsyncClient, base_url: str, database_url: str, shop: Onboarded
) -> None:
    card = await enroll(base_url, shop)
    body = batch(*(item(card, ref(), 100) for _ in range(MAX_BATCH_ITEMS + 1)))
    before = await effects(database_url)

    response = await post_batch(http, base_url, shop, body)

    assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (problem["code"], problem["items"], problem["items_max"]) == (
        "batch_too_large",
        MAX_BATCH_ITEMS + 1,
        MAX_BATCH_ITEMS,
    )
    assert await effects(database_url) == before
    assert await balance(base_url, shop, card) == 0


async def test_a_full_batch_of_the_limit_is_posted_whole(
    http: httpx.AsyncClient, base_url: str, database_url: str, shop: Onboarded
) -> None:
    cards = [await enroll(base_url, shop) for _ in range(10)]
    body = batch(*(item(cards[n % 10], ref(), 100) for n in range(MAX_BATCH_ITEMS)))
    assert len(body) > 65_536, "larger than the partner router's own body limit"

    response = await post_batch(http, base_url, shop, body)

    assert response.status_code == 201, response.text
    answer = response.json()
    assert (answer["created"], answer["rejected"], answer["duplicate"]) == (MAX_BATCH_ITEMS, 0, 0)
    assert [r["index"] for r in answer["results"]] == list(range(MAX_BATCH_ITEMS))
    for card in cards:
        assert await balance(base_url, shop, card) == MAX_BATCH_ITEMS // 10
    await books_balance(database_url)


@pytest.mark.parametrize(
    "payload",
    [
        {"items": [], "note": "end of day"},
        {"items": [{**item("4000000000000002", "eod-x"), "store": "12"}]},
        {"items": []},
        {},
    ],
    ids=["unknown-top-level-field", "unknown-item-field", "empty", "no-items"],
)
async def test_malformed_batches_are_refused_whole(
    http: httpx.AsyncClient,
    base_url: str,
    database_url: str,
    shop: Onboarded,
    payload: dict[str, Any],
) -> None:
    before = await effects(database_url)
    response = await post_batch(http, base_url, shop, json.dumps(payload).encode())
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "validation_failed"
    assert await effects(database_url) == before


async def test_cards_are_network_wide_but_transactions_stay_with_their_partner(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded, other_shop: Onboarded
) -> None:
    card = await enroll(base_url, shop)  # enrolled at the first partner
    shared_ref = ref()
    mine = (await post_batch(http, base_url, shop, batch(item(card, shared_ref, 1_000)))).json()

    # The other partner earns on the same card, with the same reference in its own scope.
    theirs = await post_batch(http, base_url, other_shop, batch(item(card, shared_ref, 1_000)))

    assert theirs.status_code == 201, theirs.text
    result = theirs.json()["results"][0]
    assert result["status"] == "created"
    assert result["transaction_id"] != mine["results"][0]["transaction_id"]
    assert await balance(base_url, shop, card) == 20
    again = (
        await post_batch(http, base_url, other_shop, batch(item(card, shared_ref, 1_000)))
    ).json()
    assert again["results"][0] == {
        "index": 0,
        "partner_ref": shared_ref,
        "status": "duplicate",
        "transaction_id": result["transaction_id"],
    }
    async with other_shop.client(base_url) as client:
        page = await client.transactions(limit=200)
        assert mine["results"][0]["transaction_id"] not in {t.transaction_id for t in page.items}


async def test_batch_items_are_counted_by_outcome(http: httpx.AsyncClient) -> None:
    text = (await http.get("/metrics")).text
    for status in ("created", "rejected", "duplicate"):
        assert f'coalition_batch_items_total{{status="{status}"}}' in text


async def test_concurrent_batches_sharing_shoppers_all_post_without_deadlocking(
    http: httpx.AsyncClient,
    base_url: str,
    database_url: str,
    shop: Onboarded,
    other_shop: Onboarded,
) -> None:
    cards = [await enroll(base_url, shop) for _ in range(20)]
    # Each file lists the same shoppers in another order: locks taken in file order would
    # form a cycle between the four calls.
    files = [
        (partner, batch(*(item(card, ref(), 100) for card in order for _ in range(5))))
        for partner in (shop, other_shop)
        for order in (cards, cards[::-1])
    ]

    responses = await asyncio.gather(
        *(post_batch(http, base_url, partner, body) for partner, body in files)
    )

    assert [r.status_code for r in responses] == [201] * 4, [r.text for r in responses]
    assert [r.json()["created"] for r in responses] == [100] * 4
    for card in cards:
        assert await balance(base_url, shop, card) == 4 * 5
    await books_balance(database_url)


async def test_the_first_use_of_a_reference_in_a_file_is_the_one_posted(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded
) -> None:
    first, second = sorted([await enroll(base_url, shop) for _ in range(2)], reverse=True)
    shared = ref()
    answer = (
        await post_batch(http, base_url, shop, batch(item(first, shared), item(second, shared)))
    ).json()
    assert [r["status"] for r in answer["results"]] == ["created", "rejected"]
    assert answer["results"][1]["error"]["code"] == "partner_ref_conflict"
    assert await balance(base_url, shop, first) == 10
    assert await balance(base_url, shop, second) == 0
