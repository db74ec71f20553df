"""A shopper with points at two partners, and the link a partner app opens the card with."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from contracts.partners import PurchaseRequest
from gateway.tokens import SigningKey
from tests.support.partner_network import Onboarded, onboard, signed

CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass(frozen=True)
class Shopper:
    card_number: str
    shopper_id: int
    grocer: Onboarded
    fuel: Onboarded


async def network(
    http: httpx.AsyncClient, signing_key: SigningKey, prefix: str
) -> tuple[Onboarded, Onboarded]:
    grocer = await onboard(http, signing_key, f"{prefix}-grocer")
    fuel = await onboard(http, signing_key, f"{prefix}-fuel")
    return grocer, fuel


async def shopper_with_points(
    http: httpx.AsyncClient, base_url: str, grocer: Onboarded, fuel: Onboarded, amount_minor: int
) -> Shopper:
    async with grocer.client(base_url) as at_grocer:
        card = (await at_grocer.enroll()).card_number
        await at_grocer.purchase(purchase(card, amount_minor))
    token = await mint(http, base_url, grocer, card)
    return Shopper(card, int(token["shopper_id"]), grocer, fuel)


def purchase(card: str, amount_minor: int) -> PurchaseRequest:
    return PurchaseRequest(
        partner_ref=f"p-{uuid.uuid4().hex[:20]}",
        card_number=card,
        amount_minor=amount_minor,
        currency="EUR",
    )


async def mint(
    http: httpx.AsyncClient, base_url: str, partner: Onboarded, card: str
) -> dict[str, Any]:
    body = json.dumps({"card_number": card}).encode()
    url = f"{base_url}/v1/shopper-tokens"
    headers = signed(partner, "POST", url, body, idempotency_key=uuid.uuid4().hex)
    minted = await http.post(url, content=body, headers=headers)
    assert minted.status_code == 201, minted.text
    answer: dict[str, Any] = minted.json()
    return answer


async def sign_in_link(http: httpx.AsyncClient, base_url: str, shopper: Shopper) -> str:
    token = await mint(http, base_url, shopper.grocer, shopper.card_number)
    return f"{base_url}/card/sign-in?token={token['access_token']}"


def csrf_of(html: str) -> str:
    found = CSRF_FIELD.search(html)
    assert found is not None, "the page has a form with a CSRF token"
    return found.group(1)
