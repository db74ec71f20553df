"""The gateway side of the hot path (issue 7): one checkout, one commit, same refusals.

A signed call is admitted (nonce, rate limit, Idempotency-Key claim) by the first statement of
its own transaction; its nonce is remembered whatever the outcome; the rate-limit counter never
makes two open transactions of one key wait for each other; a revoked key is refused within
the key cache's window.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from contracts.partners import PurchaseRequest
from gateway.partner_state import KEY_CACHE_TTL_S
from gateway.tokens import SigningKey
from tests.support.partner_network import Onboarded, admin_headers, onboard, signed

REVOCATION_REFUSED_WITHIN_S = 5.0


@pytest.fixture(scope="module")
async def shop(http: httpx.AsyncClient, signing_key: SigningKey) -> Onboarded:
    return await onboard(http, signing_key, "hot-shop")


@pytest.fixture(scope="module")
async def card(base_url: str, shop: Onboarded) -> str:
    async with shop.client(base_url) as client:
        return (await client.enroll()).card_number


@pytest.fixture
async def db(database_url: str, base_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)  # base_url: the server migrated the database
    try:
        yield conn
    finally:
        await conn.close()


def purchase_body(card: str, ref: str, **changes: Any) -> bytes:
    body = {"partner_ref": ref, "card_number": card, "amount_minor": 1_000, "currency": "EUR"}
    return json.dumps({**body, **changes}).encode()


async def post(
    http: httpx.AsyncClient, headers: dict[str, str], body: bytes, path: str = "/v1/purchases"
) -> httpx.Response:
    return await http.post(path, content=body, headers=headers)


def refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code
    assert response.json()["status"] == status
    assert response.headers.get("x-request-id")


async def test_a_purchase_writes_its_nonce_counter_effect_and_record_in_one_transaction(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded, card: str, db: asyncpg.Connection
) -> None:
    body = purchase_body(card, "one-tx")
    headers = signed(shop, "POST", f"{base_url}/v1/purchases", body, idempotency_key="one-tx")
    response = await post(http, headers, body)
    assert response.status_code == 201, response.text
    assert response.headers["ratelimit-limit"]
    nonce = headers["Signature-Input"].split('nonce="')[1].split('"')[0]
    xids = await db.fetchrow(
        """
        SELECT n.xmin::text AS nonce_xid, i.xmin::text AS record_xid, t.xmin::text AS effect_xid,
               (SELECT array_agg(r.xmin::text) FROM rate_limit_shards r
                WHERE r.key_id = $1 AND r.xmin = n.xmin) AS counted_xids
        FROM signature_nonces n, idempotency_records i, partner_transactions t
        WHERE n.key_id = $1 AND n.nonce = $2
          AND i.partner_id = $3 AND i.idempotency_key = 'one-tx'
          AND t.partner_id = $3 AND t.partner_ref = 'one-tx'
        """,
        shop.key_id,
        nonce,
        shop.partner_id,
    )
    assert xids is not None
    # The admission (nonce and counter) and the effect are written by the call's own
    # subtransaction (its savepoint in the transaction its group commits); the record, by the
    # group's last statement before COMMIT (tests/integration/test_group_commit.py shows a
    # group commits all of it or none).
    assert xids["counted_xids"] == [xids["nonce_xid"]]
    assert xids["effect_xid"] == xids["nonce_xid"]
    assert xids["record_xid"] is not None


async def test_a_replayed_purchase_whose_effect_failed_is_nonce_reused(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded, card: str, db: asyncpg.Connection
) -> None:
    body = purchase_body(card, "fails", currency="USD")  # the network's currency is EUR
    headers = signed(shop, "POST", f"{base_url}/v1/purchases", body, idempotency_key="fails")
    first = await post(http, headers, body)
    again = await post(http, headers, body)
    assert first.status_code == 422, first.text
    refused(again, 401, "nonce_reused")
    stored = await db.fetchval(
        "SELECT count(*) FROM idempotency_records WHERE partner_id = $1 AND idempotency_key = $2",
        shop.partner_id,
        "fails",
    )
    assert stored == 0  # the effect and its record were rolled back, the nonce was not
    # The same Idempotency-Key, signed again, may run it (the failure stored nothing).
    fixed = purchase_body(card, "fails")
    retry = signed(shop, "POST", f"{base_url}/v1/purchases", fixed, idempotency_key="fails")
    assert (await post(http, retry, fixed)).status_code == 201


async def test_a_replayed_request_that_failed_body_validation_is_nonce_reused(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded
) -> None:
    body = b'{"partner_ref": "x", "unknown_field": 1}'
    headers = signed(shop, "POST", f"{base_url}/v1/purchases", body, idempotency_key="bad-body")
    first = await post(http, headers, body)
    again = await post(http, headers, body)
    assert first.status_code == 400, first.text
    refused(again, 401, "nonce_reused")
    assert again.headers["www-authenticate"].startswith("Signature")


async def test_a_replayed_post_without_idempotency_key_is_nonce_reused(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded, card: str
) -> None:
    body = purchase_body(card, "no-key")
    headers = signed(shop, "POST", f"{base_url}/v1/purchases", body)
    refused(await post(http, headers, body), 400, "idempotency_key_required")
    refused(await post(http, headers, body), 401, "nonce_reused")


async def test_a_replayed_read_that_answered_404_is_nonce_reused(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded
) -> None:
    url = f"{base_url}/v1/transactions/00000000-0000-0000-0000-000000000000"
    headers = signed(shop, "GET", url)
    first = await http.get(url, headers=headers)
    again = await http.get(url, headers=headers)
    assert first.status_code in (404, 400), first.text
    refused(again, 401, "nonce_reused")


async def test_a_rate_limited_call_keeps_its_nonce_and_a_resigned_retry_passes(
    http: httpx.AsyncClient, base_url: str, signing_key: SigningKey, card: str
) -> None:
    slow = await onboard(http, signing_key, "hot-slow", rate_limit_per_s=1)
    url = f"{base_url}/v1/shoppers/{card}"
    answers: list[tuple[dict[str, str], httpx.Response]] = []
    for _ in range(3):
        headers = signed(slow, "GET", url)
        answers.append((headers, await http.get(url, headers=headers)))
    limited = [(h, a) for h, a in answers if a.status_code == 429]
    assert limited, [a.status_code for _, a in answers]
    headers, answer = limited[0]
    refused(answer, 429, "rate_limited")
    assert answer.headers["ratelimit-remaining"] == "0"
    retry_after_s = int(answer.headers["retry-after"])
    await asyncio.sleep(retry_after_s + 0.1)
    refused(await http.get(url, headers=headers), 401, "nonce_reused")  # same nonce: a replay
    resigned = await http.get(url, headers=signed(slow, "GET", url))
    assert resigned.status_code == 200, resigned.text


async def test_a_revoked_key_is_refused_within_the_cache_window(
    http: httpx.AsyncClient, base_url: str, signing_key: SigningKey, card: str
) -> None:
    assert KEY_CACHE_TTL_S < REVOCATION_REFUSED_WITHIN_S
    leaving = await onboard(http, signing_key, "hot-leaving")
    url = f"{base_url}/v1/shoppers/{card}"
    assert (await http.get(url, headers=signed(leaving, "GET", url))).status_code == 200
    revoked = await http.delete(
        f"/v1/operator/partners/{leaving.partner_id}/keys/{leaving.key_id}",
        headers=admin_headers(signing_key),
    )
    assert revoked.status_code == 200
    revoked_at_s = time.monotonic()
    while True:
        response = await http.get(url, headers=signed(leaving, "GET", url))
        if response.status_code == 401:
            refused(response, 401, "key_revoked")
            break
        assert response.status_code == 200, response.text
        assert time.monotonic() - revoked_at_s < REVOCATION_REFUSED_WITHIN_S
        await asyncio.sleep(0.1)
    assert time.monotonic() - revoked_at_s <= KEY_CACHE_TTL_S + 1.0


async def test_the_revoking_process_refuses_the_key_at_once(
    http: httpx.AsyncClient, base_url: str, signing_key: SigningKey, card: str
) -> None:
    leaving = await onboard(http, signing_key, "hot-leaving-now")
    url = f"{base_url}/v1/shoppers/{card}"
    assert (await http.get(url, headers=signed(leaving, "GET", url))).status_code == 200
    revoked = await http.delete(
        f"/v1/operator/partners/{leaving.partner_id}/keys/{leaving.key_id}",
        headers=admin_headers(signing_key),
    )
    assert revoked.status_code == 200
    refused(await http.get(url, headers=signed(leaving, "GET", url)), 401, "key_revoked")


ADMIT = "SELECT * FROM gateway_admit($1, $2, $3, $4, $5, $6, NULL, NULL)"


async def test_one_keys_open_transactions_do_not_wait_on_a_counter_row(
    database_url: str, db: asyncpg.Connection, shop: Onboarded
) -> None:
    # Two backends of one process admit calls of the same key while both transactions stay
    # open: with one counter row per key, the second would wait for the first's commit.
    other = await asyncpg.connect(database_url)
    try:
        window_s = int(time.time()) + 10_000  # a window of its own
        process = 1
        async with db.transaction(), other.transaction():
            await other.execute("SET LOCAL lock_timeout = '500ms'")
            first = await db.fetchrow(ADMIT, shop.key_id, "shard-1", 100, window_s, process, 1)
            second = await other.fetchrow(ADMIT, shop.key_id, "shard-2", 100, window_s, process, 2)
            assert first is not None
            assert second is not None
            assert (first["requests"], second["requests"]) == (1, 2)  # the process's own count
        rows = await db.fetchval(
            "SELECT sum(requests) FROM rate_limit_shards WHERE key_id = $1 AND window_s = $2",
            shop.key_id,
            window_s,
        )
        assert rows == 2
    finally:
        await other.close()


async def test_the_limit_adds_the_other_processes_committed_calls(
    database_url: str, db: asyncpg.Connection, shop: Onboarded
) -> None:
    other = await asyncpg.connect(database_url)
    try:
        window_s = int(time.time()) + 20_000
        a, b = 11, 22  # two server processes, each with its own in-memory count
        seen = [
            await db.fetchrow(ADMIT, shop.key_id, "shared-1", 3, window_s, a, 1),
            await other.fetchrow(ADMIT, shop.key_id, "shared-2", 3, window_s, b, 1),
            await db.fetchrow(ADMIT, shop.key_id, "shared-3", 3, window_s, a, 2),
            await other.fetchrow(ADMIT, shop.key_id, "shared-4", 3, window_s, b, 2),
        ]
        assert [row["requests"] for row in seen if row is not None] == [1, 2, 3, 4]
        replay = await other.fetchrow(ADMIT, shop.key_id, "shared-1", 3, window_s, b, 3)
        assert replay is not None
        assert replay["nonce_fresh"] is False
    finally:
        await other.close()


async def test_concurrent_purchases_of_one_key_all_commit(
    base_url: str, shop: Onboarded, card: str
) -> None:
    async with shop.client(base_url) as client:
        results = await asyncio.gather(
            *(
                client.purchase(
                    PurchaseRequest(
                        partner_ref=f"burst-{i}",
                        card_number=card,
                        amount_minor=100,
                        currency="EUR",
                    )
                )
                for i in range(20)
            )
        )
    assert len({r.transaction_id for r in results}) == 20


async def test_concurrent_calls_answer_alone_when_a_neighbour_fails(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded, card: str, db: asyncpg.Connection
) -> None:
    # Calls that arrive together share a commit (gateway/group_commit.py); every third one
    # fails in its effect (a currency the network does not use). Each answers as it would
    # alone: the failures 422 with nothing stored, the others 201 and stored, and every nonce
    # is remembered.
    calls = []
    for i in range(24):
        ref = f"mixed-{i}"
        body = purchase_body(card, ref, currency="USD" if i % 3 == 0 else "EUR")
        headers = signed(shop, "POST", f"{base_url}/v1/purchases", body, idempotency_key=ref)
        calls.append((ref, body, headers))
    answers = await asyncio.gather(*(post(http, headers, body) for _, body, headers in calls))
    statuses = [answer.status_code for answer in answers]
    assert statuses == [422 if i % 3 == 0 else 201 for i in range(24)], statuses
    stored = await db.fetch(
        "SELECT partner_ref FROM partner_transactions"
        " WHERE partner_id = $1 AND partner_ref LIKE 'mixed-%'",
        shop.partner_id,
    )
    assert sorted(r["partner_ref"] for r in stored) == sorted(
        f"mixed-{i}" for i in range(24) if i % 3
    )
    records = await db.fetchval(
        "SELECT count(*) FROM idempotency_records"
        " WHERE partner_id = $1 AND idempotency_key LIKE 'mixed-%'",
        shop.partner_id,
    )
    assert records == 16
    replays = await asyncio.gather(*(post(http, headers, body) for _, body, headers in calls[:6]))
    for replay in replays:
        refused(replay, 401, "nonce_reused")
