"""A bounded, seeded API fuzz of the real server with schemathesis.

The OpenAPI document served at `/schema` drives generation for three surfaces, each with real
credentials so that the fuzzer gets past authentication and reaches validation and the
operations:

- the operator API (`/v1/operator/...`) with an admin Bearer token;
- the shopper API (`/v1/me...`) with a shopper token for a shopper enrolled through the
  partner API;
- the partner API with RFC 9421 signatures made by `contracts.signing` over every generated
  request (fresh nonce, `created`, `Content-Digest`) and an `Idempotency-Key` on each POST.

Checks: no 5xx; every 4xx/5xx is `application/problem+json` carrying `code`, `status` and
`request_id`; 2xx bodies conform to the documented response schema (schemathesis'
`response_schema_conformance`), every operation included. Error bodies are checked against
the gateway's own problem shape (which the document gives as `Problem`, application/problem+json).

Bounded: `MAX_EXAMPLES` positive and `MAX_NEGATIVE_EXAMPLES` negative cases per operation,
Hypothesis derandomized (the seed is derived from each test, so CI sees the same requests on
every run), no example database, no shrinking. Traffic goes only to the server on 127.0.0.1.
The fuzz itself runs in a worker thread (schemathesis' transport is blocking) while the server
runs on the test's event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation as GenericOperation
from schemathesis.schemas import BaseSchema
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from contracts.signing import sign_request
from gateway.tokens import Role, SigningKey, load_or_create, mint_shopper
from tests.support.partner_network import Onboarded, admin_headers, onboard, signed
from tests.support.server import running_server, server_settings

# CI's bound; `make fuzz` raises it (COALITION_FUZZ_EXAMPLES, negative cases half as many).
MAX_EXAMPLES = int(os.environ.get("COALITION_FUZZ_EXAMPLES", "20"))
MAX_NEGATIVE_EXAMPLES = max(1, MAX_EXAMPLES // 2)
# schemathesis' own checks, run on every answer (errors included)
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
REQUEST_TIMEOUT_S = 10.0
SHOPPER_TOKEN_TTL_S = 3_000
PROBLEM_JSON = "application/problem+json"
PROBLEM_MEMBERS = ("code", "status", "request_id")
FAILURES_SHOWN_MAX = 40
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Operations fuzzed last on their surface: they end the credentials the others rely on.
RUN_LAST = frozenset({("POST", "/v1/me/erasure")})


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("fuzz-data"))


@pytest.fixture(scope="module")
def signing_key(data_dir: Path) -> SigningKey:
    return load_or_create(data_dir, None)


@pytest.fixture(scope="module")
async def base_url(database_url: str, data_dir: Path) -> AsyncIterator[str]:
    async with running_server(server_settings(database_url, data_dir)) as url:
        yield url


@pytest.fixture(scope="module")
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_S) as client:
        yield client


@pytest.fixture(scope="module")
async def api_schema(http: httpx.AsyncClient, base_url: str) -> BaseSchema:
    answer = await http.get("/schema")
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    loaded = schemathesis.openapi.from_dict(document)
    loaded.config.update(base_url=base_url)
    return loaded


@pytest.fixture(scope="module")
async def partner(http: httpx.AsyncClient, signing_key: SigningKey) -> Onboarded:
    return await onboard(http, signing_key, "fuzz-partner", rate_limit_per_s=10_000)


@dataclass
class Findings:
    """Failures seen so far, one line per (operation, kind of failure)."""

    seen: dict[tuple[str, str], str] = field(default_factory=dict)
    requests_sent: int = 0
    operations: set[tuple[str, str]] = field(default_factory=set)

    def add(self, operation: str, kind: str, detail: str) -> None:
        self.seen.setdefault((operation, kind), f"{operation}: {kind}: {detail}")

    def report(self) -> str:
        lines = sorted(self.seen.values())[:FAILURES_SHOWN_MAX]
        return f"{len(self.seen)} distinct failures\n" + "\n".join(lines)


Signer = Callable[[requests.PreparedRequest], None]
APIOperation = GenericOperation[Any, Any, Any, Any]


def _problem_failures(response: requests.Response) -> Iterable[tuple[str, str]]:
    """(kind, detail) for each way an answer breaks the gateway's error conventions."""
    status = response.status_code
    if status >= 500:
        yield "server error", f"{status} {response.text[:300]}"
    if status < 400:
        return
    content_type = response.headers.get("content-type", "").split(";")[0].strip()
    if content_type != PROBLEM_JSON:
        yield "not problem+json", f"{status} {content_type!r} {response.text[:200]}"
        return
    try:
        body = response.json()
    except json.JSONDecodeError:
        yield "problem body is not JSON", f"{status} {response.text[:200]}"
        return
    if not isinstance(body, dict):
        yield "problem body is not an object", f"{status} {response.text[:200]}"
        return
    missing = [name for name in PROBLEM_MEMBERS if name not in body]
    if missing:
        yield f"problem lacks {missing}", f"{status} {response.text[:200]}"
    elif body["status"] != status:
        yield "problem status differs from HTTP status", f"{status} {response.text[:200]}"
    if "Traceback" in response.text:
        yield "stack trace in the answer", response.text[:300]


def _fuzz_operation(
    operation: APIOperation,
    mode: GenerationMode,
    examples: int,
    headers: dict[str, str],
    sign: Signer | None,
    session: requests.Session,
    findings: Findings,
) -> None:
    label = f"{operation.method.upper()} {operation.path} [{mode.value}]"
    serial = itertools.count()

    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case[APIOperation]) -> None:
        call_headers = dict(headers)
        if sign is not None and case.method.upper() in MUTATING:
            call_headers["Idempotency-Key"] = f"fuzz-{label}-{next(serial)}"[:64]
        kwargs = case.as_transport_kwargs(headers=call_headers)
        # The document declares the security schemes, so schemathesis generates (and in
        # negative mode spoils) the credential headers itself: the real ones win here.
        kwargs["headers"] = {**kwargs["headers"], **call_headers}
        prepared = requests.Request(
            method=kwargs["method"],
            url=kwargs["url"],
            headers=kwargs["headers"],
            params=kwargs.get("params"),
            cookies=kwargs.get("cookies"),
            json=kwargs.get("json"),
            data=kwargs.get("data"),
        ).prepare()
        if sign is not None:
            sign(prepared)
        response = session.send(prepared, timeout=REQUEST_TIMEOUT_S, allow_redirects=False)
        findings.requests_sent += 1
        if response.status_code == 401 and (case.method.upper(), operation.path) not in RUN_LAST:
            # The fuzz must get past authentication (signatures, nonces, tokens) to be useful.
            findings.add(label, "credentials refused", f"{response.text[:200]} <- {prepared.url}")
        for kind, detail in _problem_failures(response):
            findings.add(label, kind, f"{detail} <- {prepared.method} {prepared.url}")
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as failures:
            for failure in failures.exceptions:
                findings.add(
                    label, failure.title, f"{str(failure.message)[:300]} <- {prepared.url}"
                )

    try:
        run()
    except Unsatisfiable:
        # Nothing of this operation's inputs can be made invalid (negative mode only).
        if mode is not GenerationMode.NEGATIVE:
            raise


def _has_inputs(operation: APIOperation) -> bool:
    parameters = (operation.path_parameters, operation.query, operation.headers)
    return any(group.items for group in parameters) or bool(list(operation.body))


HeadersFor = Callable[[APIOperation, requests.Session], dict[str, str]]


def _fuzz(
    api: BaseSchema,
    wanted: Callable[[str], bool],
    headers: dict[str, str] | HeadersFor,
    sign: Signer | None = None,
) -> Findings:
    findings = Findings()
    operations = []
    for result in api.get_all_operations():
        assert isinstance(result, Ok), result  # the document loaded: every operation resolves
        if wanted(result.ok().path):
            operations.append(result.ok())
    operations.sort(key=lambda op: (op.method.upper(), op.path) in RUN_LAST)
    assert operations, "no operation matched"
    with requests.Session() as session:
        for operation in operations:
            findings.operations.add((operation.method.upper(), operation.path))
            fixed = headers if isinstance(headers, dict) else headers(operation, session)
            modes = [(GenerationMode.POSITIVE, MAX_EXAMPLES)]
            if _has_inputs(operation):
                modes.append((GenerationMode.NEGATIVE, MAX_NEGATIVE_EXAMPLES))
            for mode, examples in modes:
                _fuzz_operation(operation, mode, examples, fixed, sign, session, findings)
    return findings


def _operator_headers(signing_key: SigningKey, base_url: str) -> HeadersFor:
    """A token of the first role the operation admits (admin is not admitted everywhere:
    finance alone pays a statement), found by one probe per role: the guard answers 403
    `role_required` before any input is read."""

    def headers_for(operation: APIOperation, session: requests.Session) -> dict[str, str]:
        url = base_url + re.sub(r"\{[^}]+\}", "1", operation.path)
        for role in Role:
            headers = admin_headers(signing_key, role)
            probe = session.request(
                operation.method.upper(), url, headers=headers, timeout=REQUEST_TIMEOUT_S
            )
            if not (probe.status_code == 403 and probe.json().get("code") == "role_required"):
                return headers
        raise AssertionError(f"no operator role is admitted by {operation.path}")

    return headers_for


def _partner_signer(partner: Onboarded) -> Signer:
    def sign(prepared: requests.PreparedRequest) -> None:
        body = prepared.body or b""
        raw = body.encode() if isinstance(body, str) else body
        assert isinstance(raw, bytes)
        method, url = prepared.method, prepared.url
        assert method is not None
        assert url is not None
        headers: dict[str, str] = {}
        sign_request(
            method,
            url,
            headers,
            raw,
            key_id=partner.key_id,
            secret=partner.secret,
        )
        prepared.headers.update(headers)

    return sign


def _is_operator(path: str) -> bool:
    return path.startswith("/v1/operator/")


def _is_shopper(path: str) -> bool:
    return path == "/v1/me" or path.startswith("/v1/me/")


def _is_partner(path: str) -> bool:
    return path.startswith("/v1/") and not (_is_operator(path) or _is_shopper(path))


def _is_public(path: str) -> bool:
    return not path.startswith("/v1/")


async def test_every_operation_answers_as_documented_for_each_kind_of_caller(
    api_schema: BaseSchema,
    signing_key: SigningKey,
    partner: Onboarded,
    http: httpx.AsyncClient,
    base_url: str,
) -> None:
    url = f"{base_url}/v1/shoppers"
    body = b"{}"
    enrolled = await http.post(
        url, content=body, headers=signed(partner, "POST", url, body, idempotency_key="enroll-1")
    )
    assert enrolled.status_code == 201, enrolled.text
    token = mint_shopper(
        signing_key,
        shopper_id=enrolled.json()["shopper_id"],
        partner_id=partner.partner_id,
        ttl_s=SHOPPER_TOKEN_TTL_S,
    )
    surfaces: list[tuple[str, Callable[[str], bool], dict[str, str] | HeadersFor, Signer | None]]
    surfaces = [
        ("operator", _is_operator, _operator_headers(signing_key, base_url), None),
        ("public", _is_public, {}, None),
        ("partner", _is_partner, {}, _partner_signer(partner)),
        # last: the shopper's erasure ends the token the others do not need
        ("shopper", _is_shopper, {"Authorization": f"Bearer {token}"}, None),
    ]
    reports, fuzzed, sent = [], set(), 0
    for name, wanted, headers, sign in surfaces:
        findings = await asyncio.to_thread(_fuzz, api_schema, wanted, headers, sign)
        assert findings.requests_sent > 0, name
        sent += findings.requests_sent
        fuzzed |= findings.operations
        if findings.seen:
            reports.append(f"{name}: {findings.report()}")
    documented = {
        (result.ok().method.upper(), result.ok().path)
        for result in api_schema.get_all_operations()
        if isinstance(result, Ok)
    }
    assert fuzzed == documented, documented - fuzzed
    # The figures docs/reliability.md reports (run with -s to see them).
    print(f"\nfuzz: {len(fuzzed)} operations, {sent} requests, {MAX_EXAMPLES} examples per op")
    assert not reports, "\n".join(reports)


# Regressions for what the fuzz found (both fixed in gateway/): each used to answer 500.


@pytest.mark.parametrize(
    "path",
    [
        "/v1/operator/partners/9223372036854775808",
        "/v1/operator/settlements/-9223372036854775809",
        "/v1/operator/statements/32589158477190044730",
        "/v1/operator/campaigns/32589158477190044730",
    ],
)
async def test_an_id_outside_int64_is_a_400_problem(
    http: httpx.AsyncClient, signing_key: SigningKey, path: str
) -> None:
    answer = await http.get(path, headers=admin_headers(signing_key))
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM_JSON)
    assert answer.json()["code"] == "validation_failed"


async def test_a_nul_character_in_text_is_a_400_problem(
    http: httpx.AsyncClient, signing_key: SigningKey, partner: Onboarded
) -> None:
    headers = admin_headers(signing_key)
    created = await http.post(
        "/v1/operator/partners",
        json={
            "name": "Nul\u0000Mart",
            "slug": "nul-mart",
            "issue_price_micros": 10_000,
            "redemption_price_micros": 8_000,
            "earn_points": 1,
            "earn_spend_minor": 100,
        },
        headers=headers,
    )
    revoked = await http.delete(
        f"/v1/operator/partners/{partner.partner_id}/keys/pk_a%00b", headers=headers
    )
    for answer in (created, revoked):
        assert answer.status_code == 400, answer.text
        assert answer.headers["content-type"].startswith(PROBLEM_JSON)
        assert answer.json()["code"] == "validation_failed"


async def test_a_signed_call_to_a_percent_encoded_path_verifies(
    http: httpx.AsyncClient, base_url: str, partner: Onboarded
) -> None:
    # Used to be 401 signature_invalid: the guard rebuilt @target-uri from the decoded path.
    url = f"{base_url}/v1/shoppers/%C3%82"
    answer = await http.get(url, headers=signed(partner, "GET", url))
    assert answer.status_code != 401, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM_JSON)


async def test_a_date_time_that_is_year_0_in_utc_is_a_400_problem(
    http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    # Found by `make fuzz`: 0001-01-01T00:00:01+05:00 is before year 1 in UTC, which the driver
    # cannot encode (it used to answer 500).
    answer = await http.post(
        "/v1/operator/settlements",
        json={"period_end": "0001-01-01T00:00:01+05:00"},
        headers=admin_headers(signing_key, Role.FINANCE),
    )
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM_JSON)
    assert answer.json()["code"] == "validation_failed"
