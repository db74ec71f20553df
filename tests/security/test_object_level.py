"""OWASP API1, object-level authorization, generated over every route the app serves with a
path id.

For each partner route with an id, partner A creates the object through the API (a delivery
message is written as the fan-out writes it: the fan-out is a worker, not part of the API), then
partner B calls the route with A's real id and must get 404 problem+json `not_found` (not 403:
an id of another partner does not exist for B), and A's own call must succeed, so the test
would fail if the route answered 404 to everyone. A new id route that has no case here and no
stated exception fails `test_every_id_route_is_covered`.

Shopper routes (`/v1/me...`) read the token's shopper only; the one path id they take names a
challenge every shopper is offered, whose leaderboard shows only ranks (stated below).
Operator routes (`/v1/operator/...` and the console pages) are role-based, not owned by a
tenant: `tests/security/test_operator_roles.py` covers them.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from contracts.partners import HoldRequest, PurchaseRequest
from gateway.app import create_app
from gateway.tokens import Role, SigningKey
from partners.webhooks import secrets
from tests.support.http_fixtures import base_url, data_dir, http, signing_key
from tests.support.partner_network import Onboarded, admin_headers, onboard, signed
from tests.support.routes import Caller, served
from tests.support.server import server_settings

__all__ = ["base_url", "data_dir", "http", "signing_key"]  # the fixtures, shared

PROBLEM = "application/problem+json"
PUBLIC_URL = "https://93.184.215.14/hooks"  # a literal public address: nothing is resolved
_keys = itertools.count(1)

# Routes with an id that is not owned by one partner, each with the reason.
NOT_OWNED = {
    ("GET", "/v1/shoppers/{card_number}"): "a card number is the network-wide identity every "
    "partner serves (a card enrolled at one shop earns and burns at all)",
    ("GET", "/v1/shoppers/{card_number}/profile"): "the profile is the calling partner's view "
    "of a network-wide card, computed for the caller's own partner id",
}
# Paths whose parameters name no tenant object at all (static files, locales, the document,
# one-time invite codes that are the credential themselves).
PUBLIC_NOT_OBJECTS = (
    "/card/static/",
    "/console/static/",
    "/schema/",
    "/card/lang/",
    "/card/invite/",
)


@dataclass(frozen=True)
class World:
    http: httpx.AsyncClient
    base_url: str
    a: Onboarded
    b: Onboarded
    card: str
    db: asyncpg.Connection
    signing_key: SigningKey

    async def call(
        self, who: Onboarded, method: str, path: str, body: Any = None
    ) -> httpx.Response:
        content = b"" if body is None else json.dumps(body).encode()
        key = None if method == "GET" else f"bola-{next(_keys)}"
        headers = signed(who, method, f"{self.base_url}{path}", content, idempotency_key=key)
        return await self.http.request(method, path, content=content, headers=headers)

    async def created(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        answer = await self.call(self.a, method, path, body)
        assert answer.status_code in (200, 201), answer.text
        found: dict[str, Any] = answer.json()
        return found


@pytest.fixture(scope="module")
async def world(
    http: httpx.AsyncClient, base_url: str, signing_key: SigningKey, database_url: str
) -> AsyncIterator[World]:
    a = await onboard(http, signing_key, "bola-a")
    b = await onboard(http, signing_key, "bola-b")
    async with a.client(base_url) as at_a:
        card = (await at_a.enroll()).card_number
        await at_a.purchase(
            PurchaseRequest(
                partner_ref="bola-seed", card_number=card, amount_minor=100_000, currency="EUR"
            )
        )
    db = await asyncpg.connect(database_url)
    try:
        yield World(http, base_url, a, b, card, db, signing_key)
    finally:
        await db.close()


# -- how partner A makes each kind of object; each returns the path values ------------------


async def _transaction(w: World) -> dict[str, str]:
    page = await w.created("GET", "/v1/transactions")
    return {"transaction_id": str(page["items"][-1]["transaction_id"])}


async def _hold(w: World) -> dict[str, str]:
    async with w.a.client(w.base_url) as at_a:
        hold = await at_a.hold(
            HoldRequest(partner_ref=f"bola-hold-{next(_keys)}", card_number=w.card, points=5)
        )
    return {"hold_id": str(hold.hold_id)}


async def _campaign(w: World) -> dict[str, str]:
    now = datetime.now(UTC)
    body = {
        "name": f"bola {next(_keys)}",
        "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(days=1)).isoformat(),
        "reward": {"bonus_points": 1},
        "budget_points": 100,
        "per_shopper_cap_points": 10,
    }
    return {"campaign_id": str((await w.created("POST", "/v1/campaigns", body))["id"])}


async def _reconciliation(w: World) -> dict[str, str]:
    start = datetime.now(UTC) - timedelta(hours=1)
    log = (
        "partner_ref,type,card_number,points,amount_minor,occurred_at\n"
        f"bola-seed,purchase,{w.card},1000,100000,{start.isoformat()}\n"
    ).encode()
    path = (
        f"/v1/reconciliations?period_start={start.isoformat()}"
        f"&period_end={(datetime.now(UTC) + timedelta(minutes=1)).isoformat()}"
    ).replace("+", "%2B")
    headers = signed(w.a, "POST", f"{w.base_url}{path}", log, idempotency_key=f"bola-{next(_keys)}")
    headers["Content-Type"] = "text/csv"
    uploaded = await w.http.post(path, content=log, headers=headers)
    assert uploaded.status_code == 201, uploaded.text
    return {"reconciliation_id": str(uploaded.json()["reconciliation_id"])}


async def _statement(w: World) -> dict[str, str]:
    finance = admin_headers(w.signing_key, Role.FINANCE)
    closed = await w.http.post(
        "/v1/operator/settlements",
        json={"period_end": datetime.now(UTC).isoformat()},
        headers=finance,
    )
    assert closed.status_code in (200, 201), closed.text
    mine = [s for s in closed.json()["statements"] if s["partner_id"] == w.a.partner_id]
    return {"statement_id": str(mine[0]["statement_id"])}


async def _endpoint(w: World) -> dict[str, str]:
    body = {"url": PUBLIC_URL, "events": ["purchase.created"]}
    return {"endpoint_id": (await w.created("POST", "/v1/webhook-endpoints", body))["id"]}


async def _delivery(w: World) -> dict[str, str]:
    values = await _endpoint(w)
    event_id = await w.db.fetchval(
        "SELECT event_id FROM event_outbox WHERE partner_id = $1 ORDER BY event_id LIMIT 1",
        w.a.partner_id,
    )
    assert event_id is not None
    message_id = secrets.new_public_id("msg_")
    await w.db.execute(
        """INSERT INTO webhooks.message (public_id, endpoint_id, event_id, state, attempts_made)
           SELECT $1, endpoint_id, $3, 'failed', 1 FROM webhooks.endpoint WHERE public_id = $2""",
        message_id,
        values["endpoint_id"],
        event_id,
    )
    return {**values, "message_id": message_id}


async def _challenge(w: World) -> dict[str, str]:
    now = datetime.now(UTC)
    body = {
        "name": f"bola {next(_keys)}",
        "kind": "purchases_within",
        "goal": 2,
        "window_weeks": 1,
        "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(days=1)).isoformat(),
        "reward_points": 10,
        "budget_points": 100,
    }
    return {"challenge_id": str((await w.created("POST", "/v1/challenges", body))["id"])}


async def _membership(w: World) -> dict[str, str]:
    plan = await w.http.post(
        "/v1/operator/membership-plans",
        json={
            "code": f"bola{next(_keys)}",
            "name": "Bola Plus",
            "price_minor": 500,
            "currency": "EUR",
            "term": "monthly",
            "benefits": {"earn_multiplier_bps": 15_000, "monthly_bonus_points": 0, "perks": []},
        },
        headers=admin_headers(w.signing_key),
    )
    assert plan.status_code == 201, plan.text
    async with w.a.client(w.base_url) as at_a:
        card = (await at_a.enroll()).card_number  # one active membership per shopper
    body = {
        "partner_ref": f"bola-plus-{next(_keys)}",
        "card_number": card,
        "plan_id": plan.json()["id"],
        "price_minor": 500,
        "currency": "EUR",
    }
    return {"membership_id": str((await w.created("POST", "/v1/memberships", body))["id"])}


Make = Callable[[World], Awaitable[dict[str, str]]]


@dataclass(frozen=True)
class Case:
    make: Make
    body: Callable[[], Any] = lambda: None
    owner_status: int = 200


def _since() -> dict[str, str]:
    return {"since": (datetime.now(UTC) - timedelta(hours=1)).isoformat()}


CASES: dict[tuple[str, str], Case] = {
    ("GET", "/v1/transactions/{transaction_id}"): Case(_transaction),
    ("POST", "/v1/holds/{hold_id}/capture"): Case(_hold, lambda: {}),
    ("POST", "/v1/holds/{hold_id}/void"): Case(_hold),
    ("GET", "/v1/campaigns/{campaign_id}"): Case(_campaign),
    ("POST", "/v1/campaigns/{campaign_id}/end"): Case(_campaign),
    ("GET", "/v1/reconciliations/{reconciliation_id}"): Case(_reconciliation),
    ("GET", "/v1/statements/{statement_id}"): Case(_statement),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}"): Case(_endpoint),
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): Case(
        _endpoint, lambda: {"description": "mine"}
    ),
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): Case(_endpoint, owner_status=204),
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): Case(_endpoint),
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/replay"): Case(
        _endpoint, _since, owner_status=202
    ),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries"): Case(_endpoint),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}/deliveries/{message_id}"): Case(_delivery),
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/deliveries/{message_id}/retry"): Case(
        _delivery, owner_status=202
    ),
    ("GET", "/v1/challenges/{challenge_id}"): Case(_challenge),
    ("GET", "/v1/memberships/{membership_id}"): Case(_membership),
    ("POST", "/v1/memberships/{membership_id}/cancel"): Case(_membership, lambda: {}),
}
# Shopper routes with an id that names no shopper's object, each with the reason.
SHOPPER_NOT_OWNED = {
    ("GET", "/v1/me/challenges/{challenge_id}/leaderboard"): "a challenge is offered to every "
    "shopper; the board answers ranks and the caller's own position only, never another "
    "shopper's identity (tests/e2e/test_challenges_http.py)",
    ("PUT", "/v1/me/challenges/{challenge_id}/leaderboard"): "the caller's own opt-in to a "
    "challenge every shopper is offered",
}


def _id_routes() -> list[tuple[Caller, str, str]]:
    settings = server_settings("postgresql://unused@127.0.0.1/unused", _scratch_dir())
    return [
        (s.caller, s.method, s.path_format) for s in served(create_app(settings)) if s.parameters
    ]


def _scratch_dir() -> Any:
    import tempfile
    from pathlib import Path

    return Path(tempfile.mkdtemp(prefix="bola-"))


def _skipped_by_rule(caller: Caller, path: str) -> str | None:
    """Why a route is not a tenant-object case, or None when it must have one."""
    if caller is Caller.OPERATOR or path.startswith("/console/"):
        return "operator routes are role-based (tests/security/test_operator_roles.py)"
    if caller is Caller.PUBLIC and path.startswith(PUBLIC_NOT_OBJECTS):
        return "public: the parameter names a file, a locale, the document or an invite code"
    return None


def test_every_id_route_is_covered() -> None:
    uncovered = []
    for caller, method, path in _id_routes():
        if caller is Caller.SHOPPER:
            assert (method, path) in SHOPPER_NOT_OWNED, f"a shopper route with an id: {path}"
            continue
        if _skipped_by_rule(caller, path) is None and (method, path) not in {**CASES, **NOT_OWNED}:
            uncovered.append(f"{method} {path}")
    assert uncovered == [], f"id routes without an object-level case: {uncovered}"
    served_now = {(m, p) for _, m, p in _id_routes()}
    stale = [key for key in [*CASES, *NOT_OWNED, *SHOPPER_NOT_OWNED] if key not in served_now]
    assert stale == [], f"cases for routes no longer served: {stale}"


@pytest.mark.parametrize(("method", "path"), list(CASES), ids=[f"{m} {p}" for m, p in CASES])
async def test_another_partners_real_id_answers_404_and_the_owner_succeeds(
    world: World, method: str, path: str
) -> None:
    case = CASES[(method, path)]
    values = await case.make(world)
    url = path.format(**values)
    foreign = await world.call(world.b, method, url, case.body())
    assert foreign.status_code == 404, (url, foreign.text)
    assert foreign.headers["content-type"].startswith(PROBLEM)
    assert foreign.json()["code"] == "not_found"
    own = await world.call(world.a, method, url, case.body())
    assert own.status_code == case.owner_status, (url, own.text)


@pytest.mark.parametrize(
    ("method", "path"), list(NOT_OWNED), ids=[f"{m} {p}" for m, p in NOT_OWNED]
)
async def test_network_wide_ids_answer_both_partners(world: World, method: str, path: str) -> None:
    """The stated exceptions hold: a card is served to every partner (so 404 would be wrong)."""
    url = path.format(card_number=world.card)
    for who in (world.a, world.b):
        answer = await world.call(who, method, url)
        assert answer.status_code == 200, (url, answer.text)
