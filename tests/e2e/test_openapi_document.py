"""The OpenAPI document at /schema tells the truth: result Structs for pre-encoded answers,
RFC 9457 problems (application/problem+json) for errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.tokens import Role, SigningKey, mint_operator

PROBLEM = "application/problem+json"
JSON = "application/json"
PROBLEM_REF = "#/components/schemas/Problem"


@pytest.fixture(scope="module")
async def document(http: httpx.AsyncClient) -> dict[str, Any]:
    answer = await http.get("/schema")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _schema(document: dict[str, Any], ref: str) -> dict[str, Any]:
    name = ref.removeprefix("#/components/schemas/")
    schema: dict[str, Any] = document["components"]["schemas"][name]
    return schema


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    methods = {"get", "put", "post", "patch", "delete"}
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in methods
    ]


async def test_a_purchase_documents_its_result_not_a_string(document: dict[str, Any]) -> None:
    created = document["paths"]["/v1/purchases"]["post"]["responses"]["201"]
    schema = created["content"][JSON]["schema"]
    assert schema != {"type": "string"}
    assert "points_earned" in _schema(document, schema["$ref"])["properties"]


@pytest.mark.parametrize(
    ("method", "path", "status", "member"),
    [
        ("post", "/v1/redemptions", "201", "points_redeemed"),
        ("post", "/v1/holds", "201", "hold_id"),
        ("post", "/v1/holds/{hold_id}/capture", "200", "points_captured"),
        ("post", "/v1/shoppers", "201", "shopper_id"),
        ("post", "/v1/purchases/batch", "201", "results"),
        ("post", "/v1/operator/settlements", "201", "created"),
        ("post", "/v1/operator/settlements", "200", "created"),
        ("get", "/v1/statements", "200", "items"),
    ],
)
async def test_pre_encoded_answers_document_their_struct(
    document: dict[str, Any], method: str, path: str, status: str, member: str
) -> None:
    answer = document["paths"][path][method]["responses"][status]
    schema = answer["content"][JSON]["schema"]
    assert member in _schema(document, schema["$ref"])["properties"]


async def test_statements_also_document_their_csv_rendering(document: dict[str, Any]) -> None:
    for path in ("/v1/statements", "/v1/statements/{statement_id}"):
        content = document["paths"][path]["get"]["responses"]["200"]["content"]
        assert set(content) == {JSON, "text/csv"}


async def test_errors_are_documented_as_problem_json_with_a_code(document: dict[str, Any]) -> None:
    problem = _schema(document, PROBLEM_REF)
    assert {"type", "title", "status", "code"} <= set(problem["required"])
    assert {"detail", "instance", "request_id"} <= set(problem["properties"])
    purchase = document["paths"]["/v1/purchases"]["post"]["responses"]
    assert {"400", "401", "409", "422", "429", "500"} <= set(purchase)
    for method, path, operation in _operations(document):
        for status, answer in operation["responses"].items():
            if int(status) < 400 or path == "/readyz":  # /readyz answers 503 as Readiness
                continue
            assert set(answer["content"]) == {PROBLEM}, f"{method} {path} {status}"
            assert answer["content"][PROBLEM]["schema"] == {"$ref": PROBLEM_REF}


async def test_no_success_answer_is_documented_as_a_bare_string(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        for status, answer in operation["responses"].items():
            if status.startswith("2"):
                content = answer.get("content") or {}
                schema = content.get(JSON, {}).get("schema")
                assert schema != {"type": "string"}, f"{method} {path} {status}"


async def test_a_body_id_outside_int64_is_a_400_problem(
    http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    # Found by the fuzz once it checked every operation: used to answer 500 (asyncpg cannot
    # encode the id). Belongs with the fuzz regressions in tests/security/test_api_fuzz.py.
    token = mint_operator(signing_key, subject="ops@example.test", role=Role.ADMIN, ttl_s=300)
    answer = await http.post(
        "/v1/operator/shopper-merges",
        json={"survivor_shopper_id": 1, "absorbed_shopper_id": 2**70, "reason": "duplicate"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    assert answer.json()["code"] == "validation_failed"
