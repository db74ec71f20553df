"""Every JSON route refuses bad bodies with a 400 problem: invalid UTF-8, numbers sent as
strings, control characters in text.

The routes and their body fields are generated from the app itself (tests/support/routes.py),
so a route added later is covered without editing this file. Each case goes through the real
server with real credentials for its caller (an operator token of a role the route admits, a
shopper token, an RFC 9421 signature), so the refusal is the decoder's, not authentication's.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.tokens import Role, SigningKey, load_or_create, mint_shopper
from tests.support.partner_network import Onboarded, admin_headers, onboard, signed
from tests.support.routes import Caller, FieldPath, Served, field_paths, served
from tests.support.server import running_server, server_settings

PROBLEM_JSON = "application/problem+json"
SHOPPER_TOKEN_TTL_S = 3_000
# At least this many JSON routes exist today: a generator finding fewer lost some.
JSON_ROUTES_MIN = 27
NOT_UTF8 = b'{"\xff\xfe": 1}'
CONTROL_CHARACTERS = ("\u0000", "\u001b", "\u007f", "\u009f")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("json-inputs"))


@pytest.fixture(scope="module")
def signing_key(data_dir: Path) -> SigningKey:
    return load_or_create(data_dir, None)


@pytest.fixture(scope="module")
def json_routes(database_url: str, data_dir: Path) -> list[Served]:
    app = create_app(server_settings(database_url, data_dir))
    routes = [route for route in served(app) if route.body_type is not None]
    assert len(routes) >= JSON_ROUTES_MIN, [f"{r.method} {r.path}" for r in routes]
    return routes


@pytest.fixture(scope="module")
async def base_url(database_url: str, data_dir: Path) -> AsyncIterator[str]:
    async with running_server(server_settings(database_url, data_dir)) as url:
        yield url


@pytest.fixture(scope="module")
async def http(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
        yield client


class Sender:
    """Sends a raw body to a route as its kind of caller, with fresh credentials each time."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        signing_key: SigningKey,
        partner: Onboarded,
        shopper: str,
    ) -> None:
        self.http = http
        self.base_url = base_url
        self.signing_key = signing_key
        self.partner = partner
        self.shopper_headers = {"Authorization": f"Bearer {shopper}"}
        self.role_by_route: dict[tuple[str, str], Role] = {}
        self.serial = itertools.count()

    async def send(self, route: Served, body: bytes) -> httpx.Response:
        if route.caller is Caller.OPERATOR:
            return await self._as_operator(route, body)
        headers = {"Content-Type": "application/json"}
        if route.caller is Caller.SHOPPER:
            headers.update(self.shopper_headers)
        elif route.caller is Caller.PARTNER:
            url = f"{self.base_url}{route.url()}"
            headers = signed(
                self.partner, route.method, url, body, idempotency_key=f"json-{next(self.serial)}"
            )
        return await self.http.request(route.method, route.url(), content=body, headers=headers)

    async def _as_operator(self, route: Served, body: bytes) -> httpx.Response:
        # The first role the route admits (admin is not admitted everywhere).
        key = (route.method, route.path)
        roles = [self.role_by_route[key]] if key in self.role_by_route else list(Role)
        answer: httpx.Response | None = None
        for role in roles:
            headers = {"Content-Type": "application/json", **admin_headers(self.signing_key, role)}
            answer = await self.http.request(
                route.method, route.url(), content=body, headers=headers
            )
            if not (answer.status_code == 403 and answer.json().get("code") == "role_required"):
                self.role_by_route[key] = role
                return answer
        assert answer is not None
        return answer


@pytest.fixture(scope="module")
async def sender(http: httpx.AsyncClient, signing_key: SigningKey, base_url: str) -> Sender:
    partner = await onboard(http, signing_key, "json-inputs", rate_limit_per_s=10_000)
    url = f"{base_url}/v1/shoppers"
    enrolled = await http.post(
        url, content=b"{}", headers=signed(partner, "POST", url, b"{}", idempotency_key="enroll")
    )
    assert enrolled.status_code == 201, enrolled.text
    token = mint_shopper(
        signing_key,
        shopper_id=enrolled.json()["shopper_id"],
        partner_id=partner.partner_id,
        ttl_s=SHOPPER_TOKEN_TTL_S,
    )
    return Sender(http, base_url, signing_key, partner, token)


def _refusal(answer: httpx.Response, code: str, location: str | None = None) -> str | None:
    """Why `answer` is not the expected 400 problem (None when it is)."""
    if answer.status_code != 400:
        return f"{answer.status_code} {answer.text[:200]}"
    if not answer.headers["content-type"].startswith(PROBLEM_JSON):
        return f"content-type {answer.headers['content-type']}"
    problem: dict[str, Any] = answer.json()
    if problem.get("code") != code:
        return f"code {problem.get('code')!r}: {answer.text[:200]}"
    if location is not None:
        keys = [error.get("key") for error in problem.get("errors", [])]
        if keys != [location]:
            return f"errors name {keys}, not {location!r}: {answer.text[:300]}"
    return None


def _body(path: FieldPath, value: Any) -> bytes:
    return json.dumps(path.body(value)).encode()


async def test_a_body_that_is_not_utf8_is_a_400_malformed_json_on_every_json_route(
    json_routes: list[Served], sender: Sender
) -> None:
    failures = []
    for route in json_routes:
        bodies = [NOT_UTF8]
        text_fields = [path for path in field_paths(route.body_type) if path.kind is str]
        if text_fields:  # the bad bytes inside a text value too
            bodies.append(_body(text_fields[0], "__").replace(b"__", b"\xc3\x28"))
        for body in bodies:
            why = _refusal(await sender.send(route, body), "malformed_json")
            if why:
                failures.append(f"{route.method} {route.path} {body!r}: {why}")
    assert not failures, "\n".join(failures)


async def test_a_number_sent_as_a_string_is_refused_in_every_integer_field(
    json_routes: list[Served], sender: Sender
) -> None:
    failures, checked = [], 0
    for route in json_routes:
        for path in field_paths(route.body_type):
            if path.kind is not int:
                continue
            checked += 1
            why = _refusal(
                await sender.send(route, _body(path, "10")), "validation_failed", path.location()
            )
            if why:
                failures.append(f"{route.method} {route.path} {path.location()}: {why}")
    assert checked > 0
    assert not failures, "\n".join(failures)


async def test_control_characters_are_refused_in_every_text_field(
    json_routes: list[Served], sender: Sender
) -> None:
    failures, checked = [], 0
    for route in json_routes:
        for path in field_paths(route.body_type):
            if path.kind is not str:
                continue
            for control in CONTROL_CHARACTERS:
                checked += 1
                answer = await sender.send(route, _body(path, f"ab{control}cd"))
                why = _refusal(answer, "validation_failed", path.location())
                if why:
                    failures.append(
                        f"{route.method} {route.path} {path.location()} {control!r}: {why}"
                    )
    assert checked > 0
    assert not failures, "\n".join(failures)


async def test_the_amounts_the_issue_names_as_strings_are_refused(
    sender: Sender, json_routes: list[Served]
) -> None:
    # The two reported cases, end to end: a purchase and a redemption with string amounts.
    by_path = {(route.method, route.path): route for route in json_routes}
    purchase = {
        "partner_ref": "str-amount-1",
        "card_number": "4000000000000002",
        "amount_minor": "1000",
        "currency": "EUR",
    }
    redemption = {"partner_ref": "str-points-1", "card_number": "4000000000000002", "points": "10"}
    for key, body, location in (
        (("POST", "/v1/purchases"), purchase, "amount_minor"),
        (("POST", "/v1/redemptions"), redemption, "points"),
    ):
        answer = await sender.send(by_path[key], json.dumps(body).encode())
        assert _refusal(answer, "validation_failed", location) is None, answer.text
