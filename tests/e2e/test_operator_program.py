"""Operator program settings over HTTP: the points lifetime (admin, 1 to 120 months, applied to
the next purchase) and the settlement cycle (admin, an IANA time zone)."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import httpx

from contracts.partners import PurchaseRequest
from gateway.tokens import Role, SigningKey
from tests.support.partner_network import admin_headers, onboard


async def lot_expiry(database_url: str, partner_id: int, partner_ref: str) -> datetime:
    conn = await asyncpg.connect(database_url)
    try:
        expires_at: datetime = await conn.fetchval(
            "SELECT l.expires_at FROM partner_transactions t"
            " JOIN ledger.lot l ON l.entry_id = t.ledger_entry_id"
            " WHERE t.partner_id = $1 AND t.partner_ref = $2",
            partner_id,
            partner_ref,
        )
    finally:
        await conn.close()
    return expires_at


def months_between(start: datetime, end: datetime) -> int:
    return (end.year - start.year) * 12 + end.month - start.month


async def test_points_lifetime_is_read_validated_and_applies_to_the_next_purchase(
    http: httpx.AsyncClient, base_url: str, signing_key: SigningKey, database_url: str
) -> None:
    admin = admin_headers(signing_key)
    current = await http.get("/v1/operator/points-lifetime", headers=admin)
    assert current.status_code == 200, current.text
    assert current.json()["months"] == 24  # the default

    for months in (0, 121, -3):
        refused = await http.put(
            "/v1/operator/points-lifetime", json={"months": months}, headers=admin
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "points_lifetime_invalid"
    not_admin = await http.put(
        "/v1/operator/points-lifetime",
        json={"months": 6},
        headers=admin_headers(signing_key, Role.FINANCE),
    )
    assert not_admin.status_code == 403
    assert not_admin.json()["code"] == "role_required"
    unknown_field = await http.put(
        "/v1/operator/points-lifetime", json={"months": 6, "days": 1}, headers=admin
    )
    assert unknown_field.status_code == 400
    assert (await http.get("/v1/operator/points-lifetime", headers=admin)).json()["months"] == 24

    shop = await onboard(http, signing_key, "lifetime-shop")
    async with shop.client(base_url) as at_shop:
        card = (await at_shop.enroll()).card_number
        await at_shop.purchase(
            PurchaseRequest(
                partner_ref="before", card_number=card, amount_minor=1_000, currency="EUR"
            )
        )
        changed = await http.put("/v1/operator/points-lifetime", json={"months": 6}, headers=admin)
        assert changed.status_code == 200, changed.text
        assert changed.json()["months"] == 6
        assert changed.json()["updated_by"] == "admin:ops-alice"
        await at_shop.purchase(
            PurchaseRequest(
                partner_ref="after", card_number=card, amount_minor=1_000, currency="EUR"
            )
        )
    today = datetime.now(UTC)
    assert months_between(today, await lot_expiry(database_url, shop.partner_id, "before")) == 24
    assert months_between(today, await lot_expiry(database_url, shop.partner_id, "after")) == 6
    read = await http.get(
        "/v1/operator/points-lifetime", headers=admin_headers(signing_key, Role.AUDITOR)
    )
    assert read.json()["months"] == 6


async def test_settlement_cycle_is_read_and_changed_by_an_admin_with_a_known_time_zone(
    http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    admin = admin_headers(signing_key)
    current = await http.get(
        "/v1/operator/settlement-cycle", headers=admin_headers(signing_key, Role.FINANCE)
    )
    assert current.status_code == 200, current.text
    assert current.json()["frequency"] == "daily"

    unknown = await http.put(
        "/v1/operator/settlement-cycle",
        json={"frequency": "weekly", "time_zone": "Atlantis/Capital"},
        headers=admin,
    )
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["code"] == "time_zone_unknown"
    bad_frequency = await http.put(
        "/v1/operator/settlement-cycle",
        json={"frequency": "hourly", "time_zone": "UTC"},
        headers=admin,
    )
    assert bad_frequency.status_code == 400
    assert bad_frequency.json()["code"] == "validation_failed"
    finance = await http.put(
        "/v1/operator/settlement-cycle",
        json={"frequency": "weekly", "time_zone": "Europe/Paris"},
        headers=admin_headers(signing_key, Role.FINANCE),
    )
    assert finance.status_code == 403

    changed = await http.put(
        "/v1/operator/settlement-cycle",
        json={"frequency": "weekly", "time_zone": "Europe/Paris"},
        headers=admin,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["frequency"], body["time_zone"], body["updated_by"]) == (
        "weekly",
        "Europe/Paris",
        "admin:ops-alice",
    )
    next_end = datetime.fromisoformat(body["next_period_end"])
    assert next_end.astimezone(UTC).weekday() in (6, 0)  # Monday 00:00 in Paris
    again = await http.get("/v1/operator/settlement-cycle", headers=admin)
    assert again.json()["frequency"] == "weekly"
