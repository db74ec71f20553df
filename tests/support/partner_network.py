"""Helpers for partner tests over HTTP: onboard a partner with a key, sign a raw request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from contracts.sdk import PartnerClient
from contracts.signing import sign_request
from gateway.tokens import Role, SigningKey, mint_operator

TOKEN_TTL_S = 600


@dataclass(frozen=True)
class Onboarded:
    partner_id: int
    slug: str
    key_id: str
    secret: str

    def client(self, base_url: str, **options: Any) -> PartnerClient:
        return PartnerClient(base_url, key_id=self.key_id, secret=self.secret, **options)


def admin_headers(signing_key: SigningKey, role: Role = Role.ADMIN) -> dict[str, str]:
    token = mint_operator(signing_key, subject="ops-alice", role=role, ttl_s=TOKEN_TTL_S)
    return {"Authorization": f"Bearer {token}"}


async def onboard(
    http: httpx.AsyncClient,
    signing_key: SigningKey,
    slug: str,
    *,
    issue_price_micros: int = 10_000,
    redemption_price_micros: int = 8_000,
    earn_points: int = 1,
    earn_spend_minor: int = 100,
    **extra: Any,
) -> Onboarded:
    headers = admin_headers(signing_key)
    created = await http.post(
        "/v1/operator/partners",
        json={
            "name": slug.title(),
            "slug": slug,
            "issue_price_micros": issue_price_micros,
            "redemption_price_micros": redemption_price_micros,
            "earn_points": earn_points,
            "earn_spend_minor": earn_spend_minor,
            **extra,
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    partner_id = created.json()["id"]
    key = await http.post(f"/v1/operator/partners/{partner_id}/keys", headers=headers)
    assert key.status_code == 201, key.text
    return Onboarded(partner_id, slug, key.json()["key_id"], key.json()["secret"])


def signed(
    partner: Onboarded,
    method: str,
    url: str,
    body: bytes = b"",
    *,
    idempotency_key: str | None = None,
    **sign_options: Any,
) -> dict[str, str]:
    """Headers of a signed raw request (for tests that tamper with what the SDK would do)."""
    headers: dict[str, str] = {}
    if body:
        headers["Content-Type"] = "application/json"
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    sign_request(
        method, url, headers, body, key_id=partner.key_id, secret=partner.secret, **sign_options
    )
    return headers
