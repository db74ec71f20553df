"""The service skeleton over real HTTP: health, readiness, metrics, schema, problem+json."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.tokens import Role, SigningKey, mint_operator

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["title"]
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text


async def test_health_and_readiness_answer_200(http: httpx.AsyncClient) -> None:
    health = await http.get("/healthz")
    ready = await http.get("/readyz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json()["migrations_pending"] == []


async def test_every_response_carries_a_request_id_and_echoes_a_plain_one(
    http: httpx.AsyncClient,
) -> None:
    generated = await http.get("/healthz")
    echoed = await http.get("/healthz", headers={"X-Request-Id": "abc-123"})
    refused = await http.get("/healthz", headers={"X-Request-Id": "bad id\twith tab"})
    assert len(generated.headers["x-request-id"]) == 32
    assert echoed.headers["x-request-id"] == "abc-123"
    assert refused.headers["x-request-id"] != "bad id\twith tab"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/no/such/route", 404, "not_found"),
        ("DELETE", "/healthz", 405, "method_not_allowed"),
        ("GET", "/v1/operator/me", 401, "unauthenticated"),
    ],
)
async def test_errors_are_problem_json_with_a_stable_code(
    http: httpx.AsyncClient, method: str, path: str, status: int, code: str
) -> None:
    assert_problem(await http.request(method, path), status, code)


async def test_operator_token_is_accepted_and_its_role_is_reported(
    http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    token = mint_operator(signing_key, subject="alice", role=Role.FINANCE, ttl_s=60)
    response = await http.get("/v1/operator/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {"subject": "alice", "role": "finance"}


async def test_garbage_bearer_token_is_a_problem(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/operator/me", headers={"Authorization": "Bearer not.a.jwt"})
    assert_problem(response, 401, "token_invalid")


async def test_metrics_parse_and_label_routes_by_template(http: httpx.AsyncClient) -> None:
    await http.get("/healthz")
    await http.get("/no/such/route/12345")
    response = await http.get("/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    requests = families["coalition_requests"]
    paths = {sample.labels["path"] for sample in requests.samples}
    assert "/healthz" in paths
    assert not any("12345" in path for path in paths)


async def test_schema_is_openapi_3_1(http: httpx.AsyncClient) -> None:
    response = await http.get("/schema")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert "/healthz" in document["paths"]


async def test_jwks_publishes_the_signing_key(
    http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    response = await http.get("/.well-known/jwks.json")
    keys = response.json()["keys"]
    assert [k["kid"] for k in keys] == [signing_key.kid]
    assert keys[0]["kty"] == "OKP"
    assert keys[0]["alg"] == "EdDSA"
    assert "d" not in keys[0]


async def test_a_role_refusal_is_a_403_problem_naming_the_role(
    http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    token = mint_operator(signing_key, subject="bob", role=Role.AUDITOR, ttl_s=60)
    response = await http.post(
        "/v1/operator/settlements",
        json={"period_end": "2026-01-01T00:00:00Z"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert_problem(response, 403, "role_required")
    assert response.json()["role"] == "auditor"
