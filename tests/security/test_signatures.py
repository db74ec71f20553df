"""Partner request signatures (RFC 9421): what is accepted, what is refused and with which code.

Runs a real server: the SDK and the independent `requests-http-signature` library must both
pass unchanged; every tampering is refused with its own 401 code and counted in metrics.
"""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from requests_http_signature import HTTPSignatureAuth, algorithms

from contracts.partners import PurchaseRequest
from gateway.app import create_app
from gateway.tokens import SigningKey, load_or_create
from tests.support.partner_network import Onboarded, admin_headers, onboard, signed
from tests.support.routes import Caller, served
from tests.support.server import running_server, server_settings

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def signing_key(data_dir: Path) -> SigningKey:
    return load_or_create(data_dir, None)


@pytest.fixture(scope="module")
async def base_url(database_url: str, data_dir: Path) -> AsyncIterator[str]:
    async with running_server(server_settings(database_url, data_dir)) as url:
        yield url


@pytest.fixture(scope="module")
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
async def shop(http: httpx.AsyncClient, signing_key: SigningKey) -> Onboarded:
    return await onboard(http, signing_key, "sig-shop")


@pytest.fixture(scope="module")
async def card(base_url: str, shop: Onboarded) -> str:
    async with shop.client(base_url) as client:
        return (await client.enroll()).card_number


def assert_refused(response: httpx.Response | requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["code"] == code


async def test_the_sdk_signs_calls_that_pass(base_url: str, shop: Onboarded, card: str) -> None:
    async with shop.client(base_url) as client:
        view = await client.shopper(card)
        earned = await client.purchase(
            PurchaseRequest(
                partner_ref="sdk-1", card_number=card, amount_minor=1_000, currency="EUR"
            )
        )
    assert view.card_number == card
    assert earned.points_earned == 10


async def test_requests_http_signature_interoperates(base_url: str, shop: Onboarded) -> None:
    auth = HTTPSignatureAuth(
        signature_algorithm=algorithms.HMAC_SHA256,
        key=shop.secret.encode(),
        key_id=shop.key_id,
        covered_component_ids=("@method", "@target-uri"),
        use_nonce=True,
    )

    def enroll_then_look_up() -> tuple[requests.Response, requests.Response]:
        enrolled = requests.post(
            f"{base_url}/v1/shoppers",
            json={},
            headers={"Idempotency-Key": "interop-1"},
            auth=auth,
            timeout=10,
        )
        card_number = enrolled.json().get("card_number", "0")
        looked_up = requests.get(f"{base_url}/v1/shoppers/{card_number}", auth=auth, timeout=10)
        return enrolled, looked_up

    enrolled, looked_up = await asyncio.to_thread(enroll_then_look_up)
    assert enrolled.status_code == 201, enrolled.text
    assert looked_up.status_code == 200, looked_up.text
    assert looked_up.json()["shopper_id"] == enrolled.json()["shopper_id"]


async def test_a_body_changed_after_signing_is_a_digest_mismatch(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded, card: str
) -> None:
    body = json.dumps(
        {"card_number": card, "partner_ref": "t-1", "amount_minor": 100, "currency": "EUR"}
    ).encode()
    headers = signed(shop, "POST", f"{base_url}/v1/purchases", body, idempotency_key="t-1")
    tampered = body.replace(b'"amount_minor": 100', b'"amount_minor": 900')
    response = await http.post("/v1/purchases", content=tampered, headers=headers)
    assert_refused(response, 401, "digest_mismatch")


@pytest.mark.parametrize("offset_s", [-301, 400])
async def test_a_created_time_outside_the_window_is_expired(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded, card: str, offset_s: int
) -> None:
    created = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset_s)
    headers = signed(shop, "GET", f"{base_url}/v1/shoppers/{card}", created=created)
    assert_refused(
        await http.get(f"/v1/shoppers/{card}", headers=headers), 401, "signature_expired"
    )


async def test_a_created_time_inside_the_window_passes(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded, card: str
) -> None:
    created = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=250)
    headers = signed(shop, "GET", f"{base_url}/v1/shoppers/{card}", created=created)
    assert (await http.get(f"/v1/shoppers/{card}", headers=headers)).status_code == 200


async def test_a_reused_nonce_is_refused(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded, card: str
) -> None:
    headers = signed(shop, "GET", f"{base_url}/v1/shoppers/{card}")
    first = await http.get(f"/v1/shoppers/{card}", headers=headers)
    again = await http.get(f"/v1/shoppers/{card}", headers=headers)
    assert first.status_code == 200
    assert_refused(again, 401, "nonce_reused")


async def test_a_wrong_secret_or_another_target_is_signature_invalid(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded, card: str
) -> None:
    forged = Onboarded(shop.partner_id, shop.slug, shop.key_id, "sk_not-the-secret")
    wrong_secret = signed(forged, "GET", f"{base_url}/v1/shoppers/{card}")
    other_target = signed(shop, "GET", f"{base_url}/v1/transactions")
    for headers in (wrong_secret, other_target):
        response = await http.get(f"/v1/shoppers/{card}", headers=headers)
        assert_refused(response, 401, "signature_invalid")
    assert_refused(await http.get(f"/v1/shoppers/{card}"), 401, "signature_invalid")


async def test_a_body_without_a_signed_digest_is_refused(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded
) -> None:
    headers = signed(shop, "POST", f"{base_url}/v1/shoppers", b"", idempotency_key="nd-1")
    response = await http.post("/v1/shoppers", content=b"{}", headers=headers)
    assert_refused(response, 401, "signature_invalid")


async def test_unknown_and_revoked_keys_are_refused(
    http: httpx.AsyncClient, base_url: str, signing_key: SigningKey, card: str
) -> None:
    leaving = await onboard(http, signing_key, "sig-leaving")
    unknown = Onboarded(leaving.partner_id, leaving.slug, "pk_" + "0" * 24, leaving.secret)
    url = f"{base_url}/v1/shoppers/{card}"
    assert_refused(await http.get(url, headers=signed(unknown, "GET", url)), 401, "key_unknown")
    revoked = await http.delete(
        f"/v1/operator/partners/{leaving.partner_id}/keys/{leaving.key_id}",
        headers=admin_headers(signing_key),
    )
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"]
    assert_refused(await http.get(url, headers=signed(leaving, "GET", url)), 401, "key_revoked")


async def test_a_post_without_an_idempotency_key_is_refused(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded
) -> None:
    headers = signed(shop, "POST", f"{base_url}/v1/shoppers", b"{}")
    response = await http.post("/v1/shoppers", content=b"{}", headers=headers)
    assert_refused(response, 400, "idempotency_key_required")


async def test_two_keys_are_active_during_rotation_and_a_third_is_refused(
    http: httpx.AsyncClient, base_url: str, signing_key: SigningKey, card: str
) -> None:
    rotating = await onboard(http, signing_key, "sig-rotating")
    admin = admin_headers(signing_key)
    second = await http.post(f"/v1/operator/partners/{rotating.partner_id}/keys", headers=admin)
    assert second.status_code == 201
    assert second.headers["cache-control"] == "no-store"
    new = Onboarded(
        rotating.partner_id, rotating.slug, second.json()["key_id"], second.json()["secret"]
    )
    url = f"{base_url}/v1/shoppers/{card}"
    for key in (rotating, new):
        assert (await http.get(url, headers=signed(key, "GET", url))).status_code == 200
    third = await http.post(f"/v1/operator/partners/{rotating.partner_id}/keys", headers=admin)
    assert_refused(third, 409, "key_limit_reached")
    await http.delete(
        f"/v1/operator/partners/{rotating.partner_id}/keys/{rotating.key_id}", headers=admin
    )
    assert (
        await http.post(f"/v1/operator/partners/{rotating.partner_id}/keys", headers=admin)
    ).status_code == 201


async def test_secrets_are_stored_sealed(database_url: str, shop: Onboarded) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        sealed = await conn.fetchval(
            "SELECT secret_sealed FROM partner_api_keys WHERE key_id = $1", shop.key_id
        )
    finally:
        await conn.close()
    assert shop.secret.encode() not in bytes(sealed)
    assert len(bytes(sealed)) > len(shop.secret)


async def test_signature_failures_are_counted_by_code(http: httpx.AsyncClient) -> None:
    await http.get("/v1/transactions")  # unsigned: one more signature_invalid
    families = {
        f.name: f for f in text_string_to_metric_families((await http.get("/metrics")).text)
    }
    counted = {
        sample.labels["code"]: sample.value
        for sample in families["coalition_signature_failures"].samples
        if sample.name.endswith("_total")
    }
    for code in ("signature_invalid", "digest_mismatch", "signature_expired", "nonce_reused"):
        assert counted.get(code, 0) >= 1, counted


async def test_every_partner_route_refuses_an_unsigned_call(
    http: httpx.AsyncClient, database_url: str, data_dir: Path
) -> None:
    # Routes read from the app: one added tomorrow is covered (signed by the router's hook).
    app = create_app(server_settings(database_url, data_dir))
    routes = [route for route in served(app) if route.caller is Caller.PARTNER]
    assert len(routes) >= 20
    for route in routes:
        body = None if route.method == "GET" else b"{}"
        response = await http.request(
            route.method, route.url(), content=body, headers={"content-type": "application/json"}
        )
        assert_refused(response, 401, "signature_invalid")
