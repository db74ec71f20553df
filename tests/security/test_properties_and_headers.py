"""OWASP API3 (no secret in any answer after its creation), API6 (refunds never exceed what was
paid, over the signed API, also concurrently) and API8 (security headers, CORS closed, no
traceback), against a real server."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import get
from litestar.testing import AsyncTestClient

from contracts.partners import PurchaseRequest
from gateway import card as card_pages
from gateway.app import create_app
from gateway.security_headers import CONTENT_SECURITY_POLICY
from gateway.tokens import SigningKey
from tests.support.http_fixtures import base_url, data_dir, http, signing_key
from tests.support.partner_network import Onboarded, admin_headers, onboard, signed
from tests.support.routes import Caller, served
from tests.support.server import server_settings

__all__ = ["base_url", "data_dir", "http", "signing_key"]  # the fixtures, shared

PROBLEM = "application/problem+json"
PUBLIC_URL = "https://93.184.215.14/hooks"
_keys = itertools.count(1)


async def call(
    http: httpx.AsyncClient, base_url: str, who: Onboarded, method: str, path: str, body: Any = None
) -> httpx.Response:
    content = b"" if body is None else json.dumps(body).encode()
    key = None if method == "GET" else f"prop-{next(_keys)}"
    headers = signed(who, method, f"{base_url}{path}", content, idempotency_key=key)
    return await http.request(method, path, content=content, headers=headers)


@pytest.fixture(scope="module")
async def shop(http: httpx.AsyncClient, signing_key: SigningKey) -> Onboarded:
    return await onboard(http, signing_key, "prop-shop")


@pytest.fixture(scope="module")
async def card(base_url: str, shop: Onboarded) -> str:
    async with shop.client(base_url) as client:
        return (await client.enroll()).card_number


# -- API3: secrets only in the create / rotate answer ----------------------------------------


def _list_routes(app_data_dir: Path) -> list[tuple[Caller, str]]:
    """Every GET route without a path parameter, by caller: all of them are scanned."""
    settings = server_settings("postgresql://unused@127.0.0.1/unused", app_data_dir)
    return [
        (s.caller, s.path_format)
        for s in served(create_app(settings))
        if s.method == "GET" and not s.parameters and s.caller in (Caller.PARTNER, Caller.OPERATOR)
    ]


async def test_no_secret_is_answered_after_its_creation(
    http: httpx.AsyncClient,
    base_url: str,
    signing_key: SigningKey,
    shop: Onboarded,
    tmp_path: Path,
) -> None:
    admin = admin_headers(signing_key)
    second_key = await http.post(f"/v1/operator/partners/{shop.partner_id}/keys", headers=admin)
    assert second_key.status_code == 201
    key_secret = second_key.json()["secret"]
    created = await call(
        http,
        base_url,
        shop,
        "POST",
        "/v1/webhook-endpoints",
        {"url": PUBLIC_URL, "events": ["purchase.created"]},
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()["id"]
    first_hook_secret = created.json()["secret"]
    rotated = await call(
        http, base_url, shop, "POST", f"/v1/webhook-endpoints/{endpoint}/rotate-secret"
    )
    assert rotated.status_code == 200, rotated.text
    hook_secret = rotated.json()["secret"]
    secrets = [shop.secret, key_secret, first_hook_secret, hook_secret]
    assert all(len(s) >= 16 for s in secrets)

    answers: list[tuple[str, httpx.Response]] = []
    for caller, path in _list_routes(tmp_path):
        if caller is Caller.PARTNER:
            answers.append((path, await call(http, base_url, shop, "GET", path)))
        else:
            answers.append((path, await http.get(path, headers=admin)))
    for path in (
        f"/v1/webhook-endpoints/{endpoint}",
        f"/v1/webhook-endpoints/{endpoint}/deliveries",
    ):
        answers.append((path, await call(http, base_url, shop, "GET", path)))
    answers.append(
        (
            "partner",
            await http.get(f"/v1/operator/partners/{shop.partner_id}", headers=admin),
        )
    )
    scanned = [path for path, answer in answers if answer.status_code == 200]
    assert f"/v1/webhook-endpoints/{endpoint}" in scanned
    assert "/v1/webhook-endpoints" in scanned
    assert endpoint in (await call(http, base_url, shop, "GET", "/v1/webhook-endpoints")).text
    for path, answer in answers:
        for secret in secrets:
            assert secret not in answer.text, f"a secret in the answer of GET {path}"


# -- API6: a refund never exceeds what was paid --------------------------------------------


async def _purchase(base_url: str, shop: Onboarded, card: str, amount_minor: int) -> str:
    ref = f"paid-{next(_keys)}"
    async with shop.client(base_url) as client:
        await client.purchase(
            PurchaseRequest(
                partner_ref=ref, card_number=card, amount_minor=amount_minor, currency="EUR"
            )
        )
    return ref


def _refund(original: str, amount_minor: int) -> dict[str, Any]:
    return {
        "partner_ref": f"back-{next(_keys)}",
        "original_partner_ref": original,
        "amount_minor": amount_minor,
    }


def _refused(answer: httpx.Response) -> None:
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    assert answer.json()["code"] == "refund_exceeds_original"


async def test_one_refund_above_the_amount_paid_is_refused(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded, card: str
) -> None:
    original = await _purchase(base_url, shop, card, 10_000)
    _refused(await call(http, base_url, shop, "POST", "/v1/refunds", _refund(original, 10_001)))
    exact = await call(http, base_url, shop, "POST", "/v1/refunds", _refund(original, 10_000))
    assert exact.status_code in (200, 201), exact.text


async def test_partial_refunds_above_the_amount_paid_are_refused(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded, card: str
) -> None:
    original = await _purchase(base_url, shop, card, 10_000)
    first = await call(http, base_url, shop, "POST", "/v1/refunds", _refund(original, 6_000))
    assert first.status_code in (200, 201), first.text
    _refused(await call(http, base_url, shop, "POST", "/v1/refunds", _refund(original, 4_001)))
    rest = await call(http, base_url, shop, "POST", "/v1/refunds", _refund(original, 4_000))
    assert rest.status_code in (200, 201), rest.text
    _refused(await call(http, base_url, shop, "POST", "/v1/refunds", _refund(original, 1)))


async def test_two_concurrent_partial_refunds_never_exceed_the_amount_paid(
    http: httpx.AsyncClient, base_url: str, shop: Onboarded, card: str
) -> None:
    for _ in range(3):  # a few rounds: the race must be lost by exactly one each time
        original = await _purchase(base_url, shop, card, 10_000)
        answers = await asyncio.gather(
            *(
                call(http, base_url, shop, "POST", "/v1/refunds", _refund(original, 6_000))
                for _ in range(2)
            )
        )
        statuses = sorted(a.status_code for a in answers)
        assert statuses[1] == 422, [a.text for a in answers]
        assert statuses[0] in (200, 201), [a.text for a in answers]
        _refused(next(a for a in answers if a.status_code == 422))


# -- API8: headers, CORS, no traceback -----------------------------------------------------


async def test_every_answer_carries_the_security_headers(
    http: httpx.AsyncClient, base_url: str, signing_key: SigningKey, shop: Onboarded
) -> None:
    answers = {
        "health": await http.get("/healthz"),
        "unknown path": await http.get("/no-such-path"),
        "unauthenticated api": await http.get("/v1/operator/me"),
        "operator api": await http.get("/v1/operator/me", headers=admin_headers(signing_key)),
        "partner api": await call(http, base_url, shop, "GET", "/v1/transactions"),
        "console sign-in page": await http.get("/console/login"),
        "card page": await http.get("/card/sign-in"),
        "console static": await http.get("/console/static/console.css"),
    }
    for name, answer in answers.items():
        assert answer.headers.get("x-content-type-options") == "nosniff", name
        assert answer.headers.get("referrer-policy") == "no-referrer", name
        assert answer.headers.get("x-frame-options") == "DENY", name
    for name in ("unauthenticated api", "operator api", "partner api"):
        assert answers[name].headers.get("cache-control") == "no-store", name
    assert answers["console sign-in page"].headers["content-security-policy"] == (
        CONTENT_SECURITY_POLICY
    )
    assert (
        answers["card page"].headers["content-security-policy"]
        == card_pages.CONTENT_SECURITY_POLICY
    )
    for name in ("console sign-in page", "card page"):
        answer = answers[name]
        assert answer.headers["content-type"].startswith("text/html"), (name, answer.status_code)
        policy = answer.headers.get("content-security-policy")
        assert policy is not None, name
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy


async def test_html_pages_have_no_inline_script_the_policy_would_block(
    http: httpx.AsyncClient,
) -> None:
    """The CSP allows only self-hosted scripts: an executable inline <script> would break."""
    for path in ("/console/login", "/card/sign-in"):
        page = (await http.get(path)).text.lower()
        for tag in page.split("<script")[1:]:
            opening = tag.split(">", 1)[0]
            assert "src=" in opening or 'type="application/json"' in opening, (path, opening)
        assert "<style" not in page
        assert " style=" not in page
        assert " onclick=" not in page


async def test_a_cross_origin_preflight_gets_no_cors_grant(http: httpx.AsyncClient) -> None:
    for path in ("/v1/transactions", "/v1/operator/me", "/v1/me"):
        answer = await http.options(
            path,
            headers={
                "Origin": "https://evil.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,signature",
            },
        )
        assert "access-control-allow-origin" not in answer.headers, path
        assert "access-control-allow-credentials" not in answer.headers, path


@pytest.fixture
async def failing_app_client(
    database_url: str, tmp_path: Path
) -> AsyncIterator[AsyncTestClient[Any]]:
    @get("/v1/boom", sync_to_thread=False)
    def boom() -> None:
        raise RuntimeError("a secret detail of an internal failure")

    app = create_app(server_settings(database_url, tmp_path))
    app.register(boom)
    async with AsyncTestClient(app=app, raise_server_exceptions=False) as client:
        yield client


async def test_an_internal_error_answers_problem_json_without_a_traceback(
    failing_app_client: AsyncTestClient[Any],
) -> None:
    answer = await failing_app_client.get("/v1/boom")
    assert answer.status_code == 500
    assert answer.headers["content-type"].startswith(PROBLEM)
    assert answer.json()["code"] == "internal_error"
    assert "Traceback" not in answer.text
    assert "secret detail" not in answer.text
    assert "RuntimeError" not in answer.text
    assert answer.headers.get("x-content-type-options") == "nosniff"
