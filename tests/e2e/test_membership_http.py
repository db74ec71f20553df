"""Paid membership over HTTP: an operator defines Plus, partner A sells it (signed, idempotent),
the shopper earns with the multiplier at partner B paid by network marketing, the period's
statements carry A's membership line, a mid-term cancellation refunds the prorated fee
exactly, and the books verify. Expected figures are computed by hand in the comments."""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from contracts.partners import PurchaseRequest, RedemptionRequest
from gateway.tokens import Role, SigningKey
from ledger import service as ledger
from ledger import settlement, verify
from tests.support.partner_network import Onboarded, admin_headers, onboard, signed

_keys = itertools.count(1)
CENT = 10_000  # micros in one EUR cent

PLUS = {
    "code": "plus",
    "name": "Coalition Plus",
    "price_minor": 1_000,  # 10.00 EUR a month
    "currency": "EUR",
    "term": "monthly",
    "benefits": {
        "earn_multiplier_bps": 20_000,  # 2.0x: extra points = base x 1.0
        "monthly_bonus_points": 100,
        "tier_floor": "silver",
        "perks": ["free coffee refill", "priority checkout"],
    },
    "commission_bps": 1_500,  # the seller keeps 15 %
}


async def send(
    http: httpx.AsyncClient,
    base_url: str,
    who: Onboarded,
    method: str,
    path: str,
    body: Any = None,
    *,
    key: str | None = None,
) -> httpx.Response:
    raw = b"" if body is None else json.dumps(body).encode()
    if method == "POST" and key is None:
        key = f"m-{next(_keys)}"
    headers = signed(who, method, f"{base_url}{path}", raw, idempotency_key=key)
    return await http.request(method, path, content=raw, headers=headers)


def ref() -> str:
    return f"r-{uuid.uuid4().hex[:20]}"


@pytest.fixture(scope="module")
async def seller(http: httpx.AsyncClient, signing_key: SigningKey) -> Onboarded:
    return await onboard(http, signing_key, "plus-seller")


@pytest.fixture(scope="module")
async def grocer(http: httpx.AsyncClient, signing_key: SigningKey) -> Onboarded:
    # 1 point per EUR, issued at 0.01 EUR a point (onboard's defaults)
    return await onboard(http, signing_key, "plus-grocer")


@pytest.fixture(scope="module")
async def plan_id(http: httpx.AsyncClient, signing_key: SigningKey) -> int:
    created = await http.post(
        "/v1/operator/membership-plans", json=PLUS, headers=admin_headers(signing_key)
    )
    assert created.status_code == 201, created.text
    plan = created.json()
    assert plan["version"] == 1
    assert plan["sellable"] is True
    assert plan["benefits"]["perks"] == PLUS["benefits"]["perks"]  # type: ignore[index]
    return int(plan["id"])


async def close_period(http: httpx.AsyncClient, signing_key: SigningKey) -> dict[str, Any]:
    closed = await http.post(
        "/v1/operator/settlements",
        json={"period_end": datetime.now(UTC).isoformat()},
        headers=admin_headers(signing_key, Role.FINANCE),
    )
    assert closed.status_code == 201, closed.text
    period: dict[str, Any] = closed.json()
    return period


async def books_verify(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await verify.verify(conn) == []
        assert await settlement.verify_settlements(conn) == []
    finally:
        await conn.close()


async def sale(
    http: httpx.AsyncClient, base_url: str, who: Onboarded, card: str, plan: int, **extra: Any
) -> httpx.Response:
    body = {
        "partner_ref": ref(),
        "card_number": card,
        "plan_id": plan,
        "price_minor": 1_000,
        "currency": "EUR",
        **extra,
    }
    return await send(http, base_url, who, "POST", "/v1/memberships", body)


async def test_plus_sold_at_a_earns_at_b_on_the_networks_account_and_settles(
    http: httpx.AsyncClient,
    base_url: str,
    database_url: str,
    signing_key: SigningKey,
    seller: Onboarded,
    grocer: Onboarded,
    plan_id: int,
) -> None:
    await close_period(http, signing_key)  # what came before is in an earlier period
    async with seller.client(base_url) as at_seller:
        card = (await at_seller.enroll()).card_number

    body = {
        "partner_ref": "plus-1",
        "card_number": card,
        "plan_id": plan_id,
        "price_minor": 1_000,
        "currency": "EUR",
    }
    sold = await send(http, base_url, seller, "POST", "/v1/memberships", body, key="sale-1")
    again = await send(http, base_url, seller, "POST", "/v1/memberships", body, key="sale-1")
    assert sold.status_code == 201, sold.text
    assert again.status_code == 201
    assert again.headers["Idempotency-Replayed"] == "true"
    assert again.json()["id"] == sold.json()["id"]  # one membership
    other_key = await send(http, base_url, seller, "POST", "/v1/memberships", body, key="sale-2")
    assert other_key.status_code == 409
    assert other_key.json()["code"] == "partner_ref_conflict"
    second = await sale(http, base_url, seller, card, plan_id)
    assert second.status_code == 409
    assert second.json()["code"] == "membership_active"
    membership = sold.json()
    # 10.00 EUR, 15 % commission: the seller keeps 1.50 and owes 8.50
    assert (membership["fees_minor"], membership["commission_minor"]) == (1_000, 150)
    assert membership["bonus_points_granted"] == 100  # the first month's bonus, at once

    async with grocer.client(base_url) as at_grocer:
        earned = await at_grocer.purchase(
            PurchaseRequest(
                partner_ref=ref(), card_number=card, amount_minor=10_000, currency="EUR"
            )
        )
    # base 100 (partner); membership: 100 x (2.0 - 1.0) = 100, plus the silver floor's tier
    # bonus over the qualified member tier, floor(100 x 0.25) = 25: 125 paid by the network
    assert [(i.kind, i.points, i.paid_by) for i in earned.breakdown] == [
        ("base", 100, "partner"),
        ("membership", 125, "network"),
    ]
    assert earned.balance == 100 + 225

    period = await close_period(http, signing_key)
    by_partner = {s["partner_id"]: s for s in period["statements"]}
    a, b = by_partner[seller.partner_id], by_partner[grocer.partner_id]
    assert (a["membership_count"], a["membership_micros"]) == (1, 850 * CENT)
    assert a["adjustments_micros"] == 0
    assert a["issued_micros"] == 0
    assert a["payment_due_micros"] == 850 * CENT
    assert a["payer"] == "partner"
    # B pays only its base points: 100 x 0.01 EUR
    assert (b["issued_points"], b["issued_micros"], b["membership_micros"]) == (100, 100 * CENT, 0)
    lines = {line["account"]: line["amount_micros"] for line in period["network_lines"]}
    # marketing funds 125 points at B's 0.01 EUR and the 100 bonus points at the default 0.01
    assert lines["network:marketing"] == (125 + 100) * CENT
    assert lines["network:membership_fees"] == -1_000 * CENT
    assert lines["network:membership_commission"] == 150 * CENT

    statement_id = a["statement_id"]
    as_csv = await send(http, base_url, seller, "GET", f"/v1/statements/{statement_id}?format=csv")
    header, row = as_csv.text.strip().split("\r\n")
    csv_row = dict(zip(header.split(","), row.split(","), strict=True))
    assert (csv_row["membership_count"], csv_row["membership_micros"]) == ("1", "8500000")

    minted = await send(http, base_url, grocer, "POST", "/v1/shopper-tokens", {"card_number": card})
    me = {"Authorization": f"Bearer {minted.json()['access_token']}"}
    mine = (await http.get("/v1/me/membership", headers=me)).json()
    assert mine["member"] is True
    assert mine["plan"]["code"] == "plus"
    assert mine["bonus_points_granted"] == 100
    tier = (await http.get("/v1/me/tier", headers=me)).json()
    assert tier["tier"] == "silver"  # the plan's floor
    await books_verify(database_url)


async def test_another_partners_membership_answers_404(
    http: httpx.AsyncClient, base_url: str, seller: Onboarded, grocer: Onboarded, plan_id: int
) -> None:
    async with seller.client(base_url) as at_seller:
        card = (await at_seller.enroll()).card_number
    sold = (await sale(http, base_url, seller, card, plan_id)).json()
    path = f"/v1/memberships/{sold['id']}"
    assert (await send(http, base_url, grocer, "GET", path)).status_code == 404
    cancel = await send(http, base_url, grocer, "POST", f"{path}/cancel", {})
    assert cancel.status_code == 404
    assert cancel.json()["code"] == "not_found"
    assert (await send(http, base_url, seller, "GET", path)).json()["status"] == "active"


async def test_a_mid_term_cancellation_refunds_the_prorated_fee_and_claws_back_the_bonus(
    http: httpx.AsyncClient,
    base_url: str,
    database_url: str,
    signing_key: SigningKey,
    seller: Onboarded,
    grocer: Onboarded,
    plan_id: int,
) -> None:
    async with seller.client(base_url) as at_seller:
        card = (await at_seller.enroll()).card_number
    sold = (await sale(http, base_url, seller, card, plan_id)).json()
    # The clock cannot wait 10 days: move the 30-day term back 10 days and 1 hour instead.
    start = datetime.now(UTC) - timedelta(days=10, hours=1)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE memberships SET started_at = $2, period_start = $2, period_end = $3"
            " WHERE id = $1",
            sold["id"],
            start,
            start + timedelta(days=30),
        )
    finally:
        await conn.close()
    async with grocer.client(base_url) as at_grocer:  # the shopper spends 60 of the 100 bonus
        await at_grocer.redeem(RedemptionRequest(partner_ref=ref(), card_number=card, points=60))

    path = f"/v1/memberships/{sold['id']}/cancel"
    cancelled = await send(http, base_url, seller, "POST", path, {"reason": "moving abroad"})
    assert cancelled.status_code == 200, cancelled.text
    # 19 whole days of 30 remain: refund floor(1000 x 19 / 30) = 633; the seller keeps the
    # commission on the 367 kept, floor(367 x 0.15) = 55, so it gives back 150 - 55 = 95
    m = cancelled.json()
    assert (m["status"], m["refunded_minor"], m["commission_minor"]) == ("cancelled", 633, 55)
    # the month in progress's 100 bonus points are reversed: 40 unspent, 60 into points debt
    assert m["bonus_points_reversed"] == 100
    async with seller.client(base_url) as at_seller:
        assert (await at_seller.shopper(card)).balance == -60
    again = await send(http, base_url, seller, "POST", path, {})
    assert again.status_code == 409
    assert again.json()["code"] == "membership_not_active"

    conn = await asyncpg.connect(database_url)
    try:
        fees = await ledger.balance(conn, "network:membership_fees")
        commission = await ledger.balance(conn, "network:membership_commission")
    finally:
        await conn.close()
    # three sales in this module (1000 each, 150 commission) and this refund
    assert fees == (-3 * 1_000 + 633) * CENT
    assert commission == (3 * 150 - 95) * CENT
    await books_verify(database_url)


async def test_plans_are_versioned_and_an_older_version_stops_selling(
    http: httpx.AsyncClient, base_url: str, signing_key: SigningKey, seller: Onboarded, plan_id: int
) -> None:
    admin = admin_headers(signing_key)
    newer = await http.post(
        "/v1/operator/membership-plans", json={**PLUS, "price_minor": 1_200}, headers=admin
    )
    assert newer.status_code == 201
    assert newer.json()["version"] == 2
    old = (await http.get(f"/v1/operator/membership-plans/{plan_id}", headers=admin)).json()
    assert old["sellable"] is False
    assert old["price_minor"] == 1_000
    async with seller.client(base_url) as at_seller:
        card = (await at_seller.enroll()).card_number
    refused = await sale(http, base_url, seller, card, plan_id)
    assert refused.status_code == 409
    assert refused.json()["code"] == "membership_plan_not_sellable"
    wrong_price = await sale(http, base_url, seller, card, newer.json()["id"])
    assert wrong_price.status_code == 422
    assert wrong_price.json()["code"] == "membership_price_mismatch"
    bad = await http.post(
        "/v1/operator/membership-plans",
        json={**PLUS, "benefits": {"earn_multiplier_bps": 90_000}},
        headers=admin,
    )
    assert bad.status_code == 400


async def test_a_sale_sent_in_parallel_makes_one_membership(
    http: httpx.AsyncClient,
    base_url: str,
    database_url: str,
    signing_key: SigningKey,
    seller: Onboarded,
) -> None:
    plan = await http.post(
        "/v1/operator/membership-plans",
        json={**PLUS, "code": "plus-parallel"},
        headers=admin_headers(signing_key),
    )
    async with seller.client(base_url) as at_seller:
        card = (await at_seller.enroll()).card_number
    body = {
        "partner_ref": ref(),
        "card_number": card,
        "plan_id": plan.json()["id"],
        "price_minor": 1_000,
        "currency": "EUR",
    }
    path = "/v1/memberships"
    same_key = await asyncio.gather(
        *(send(http, base_url, seller, "POST", path, body, key="parallel") for _ in range(5))
    )
    other_ref = {**body, "partner_ref": ref()}
    other_keys = await asyncio.gather(
        *(send(http, base_url, seller, "POST", path, other_ref) for _ in range(3))
    )
    assert {r.status_code for r in same_key} <= {201, 409}
    created = [r for r in same_key if r.status_code == 201]
    assert len({r.json()["id"] for r in created}) == 1
    # another ref for the same shopper: the one active membership refuses every one of them
    assert [r.json()["code"] for r in other_keys] == ["membership_active"] * 3
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetchval(
            "SELECT count(*) FROM memberships m JOIN shopper_cards c USING (shopper_id)"
            " WHERE c.card_number = $1",
            card,
        )
    finally:
        await conn.close()
    assert rows == 1
    await books_verify(database_url)
