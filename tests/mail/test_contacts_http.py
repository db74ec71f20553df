"""The shopper's email and locale over HTTP: at enrollment (signed partner call), in the
profile, by `PATCH /v1/me` (a merge patch), with problem+json codes for bad values."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from gateway.tokens import SigningKey
from tests.support.partner_network import Onboarded, admin_headers, onboard, signed


async def signed_post(
    http: httpx.AsyncClient, base_url: str, partner: Onboarded, path: str, body: dict[str, Any]
) -> httpx.Response:
    raw = json.dumps(body).encode()
    url = f"{base_url}{path}"
    headers = signed(partner, "POST", url, raw, idempotency_key=uuid.uuid4().hex)
    return await http.post(url, content=raw, headers=headers)


async def test_email_and_locale_from_enrollment_to_profile(
    base_url: str, http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    partner = await onboard(http, signing_key, "mail-grocer")
    bad = await signed_post(
        http, base_url, partner, "/v1/shoppers", {"email": "not an address", "locale": "ru"}
    )
    assert bad.status_code == 422, bad.text
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert bad.json()["code"] == "email_invalid"
    bad_locale = await signed_post(
        http, base_url, partner, "/v1/shoppers", {"email": "a@shop.example", "locale": "de"}
    )
    assert bad_locale.json()["code"] == "locale_unsupported"

    enrolled = await signed_post(
        http, base_url, partner, "/v1/shoppers", {"email": "Anna@Shop.Example", "locale": "ru"}
    )
    assert enrolled.status_code == 201, enrolled.text
    minted = await signed_post(
        http,
        base_url,
        partner,
        "/v1/shopper-tokens",
        {"card_number": enrolled.json()["card_number"]},
    )
    me = {"Authorization": f"Bearer {minted.json()['access_token']}"}
    profile = (await http.get("/v1/me", headers=me)).json()
    assert (profile["email"], profile["locale"]) == ("Anna@shop.example", "ru")

    # a merge patch: the birth date alone leaves the address; null removes it
    patched = await http.patch("/v1/me", headers=me, json={"birth_date": "1990-05-17"})
    assert patched.json()["email"] == "Anna@shop.example"
    patched = await http.patch("/v1/me", headers=me, json={"email": None, "locale": "en"})
    assert (patched.json()["email"], patched.json()["locale"]) == (None, "en")
    assert patched.json()["birth_date"] == "1990-05-17"
    refused = await http.patch("/v1/me", headers=me, json={"email": "x@y"})
    assert refused.status_code == 422
    assert refused.json()["code"] == "email_invalid"


async def test_operators_set_a_partners_finance_contact(
    http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    partner = await onboard(http, signing_key, "mail-finance")
    path = f"/v1/operator/partners/{partner.partner_id}/finance-contact"
    headers = admin_headers(signing_key)
    assert (await http.get(path, headers=headers)).status_code == 404
    put = await http.put(path, headers=headers, json={"email": "ap@fin.example", "locale": "ru"})
    assert put.status_code == 200, put.text
    got = (await http.get(path, headers=headers)).json()
    assert (got["email"], got["locale"]) == ("ap@fin.example", "ru")
    bad = await http.put(path, headers=headers, json={"email": "ap@@fin.example"})
    assert bad.json()["code"] == "email_invalid"
    unknown = await http.put(
        "/v1/operator/partners/999999/finance-contact", headers=headers, json={"email": "a@b.co"}
    )
    assert unknown.status_code == 404
