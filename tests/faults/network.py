"""A partner with one API key and a few enrolled shoppers, made over the operator and partner
APIs of a running server (the drills' load then runs against them)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec

from contracts.partners import EnrollRequest
from gateway.tokens import load_or_create
from tests.faults.load import Caller, Card
from tests.support.partner_network import Onboarded, onboard

RATE_LIMIT_PER_S = 100_000  # the drills measure faults, not the per-key limit
ENROLL_ATTEMPTS_MAX = 5


@dataclass(frozen=True)
class Network:
    partner: Onboarded
    cards: list[Card]

    def caller(self, base_url: str) -> Caller:
        return Caller(base_url, self.partner.key_id, self.partner.secret)


async def build(base_url: str, data_dir: Path, *, slug: str, shoppers: int) -> Network:
    """Onboard `slug` (1 point per 1.00 spent) and enroll `shoppers` shoppers."""
    signing_key = load_or_create(data_dir, None)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        partner = await onboard(http, signing_key, slug, rate_limit_per_s=RATE_LIMIT_PER_S)
    caller = Caller(base_url, partner.key_id, partner.secret)
    try:
        cards = [await _enroll(caller) for _ in range(shoppers)]
    finally:
        await caller.aclose()
    return Network(partner, cards)


async def _enroll(caller: Caller) -> Card:
    key = f"enroll-{uuid.uuid4()}"
    body = msgspec.json.encode(EnrollRequest())
    for _ in range(ENROLL_ATTEMPTS_MAX):
        response = await caller.call("POST", "/v1/shoppers", body, key)
        if response.status_code == 201:
            answer = response.json()
            return Card(answer["card_number"], answer["shopper_id"])
    raise AssertionError(f"enrollment failed: {response.status_code} {response.text}")
