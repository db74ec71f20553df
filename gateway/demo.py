"""The demo network seeded by `make run` (`coalition serve --demo`).

Two partners (a grocer that issues points, a fuel station where they are spent), an API key
each, a few shoppers with purchases and one redemption. Seeding twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import asyncpg

from contracts.partners import EnrollRequest, PartnerCreate, PurchaseRequest, RedemptionRequest
from infra.db import CONNECT_TIMEOUT_S
from partners import keybox, onboarding, operations
from shoppers.mail import contacts

DEMO_OPERATOR = "demo-seed"
GROCER = PartnerCreate(
    name="Fresh Grocer",
    slug="demo-grocer",
    issue_price_micros=10_000,
    redemption_price_micros=8_000,
    earn_points=1,
    earn_spend_minor=100,
)
FUEL = PartnerCreate(
    name="Fuel Stop",
    slug="demo-fuel",
    issue_price_micros=12_000,
    redemption_price_micros=9_000,
    earn_points=2,
    earn_spend_minor=100,
)
SHOPPERS = 3
PURCHASE_AMOUNTS_MINOR = (4_250, 12_990, 799)
REDEEMED_POINTS = 50


@dataclass(frozen=True)
class DemoKey:
    partner: str
    key_id: str
    secret: str


async def _seed_partner(
    conn: asyncpg.Connection, box: keybox.KeyBox, req: PartnerCreate
) -> tuple[int, DemoKey]:
    partner = await onboarding.create_partner(conn, req, operator=DEMO_OPERATOR)
    key = await onboarding.create_api_key(conn, box, partner.id, operator=DEMO_OPERATOR)
    return partner.id, DemoKey(req.slug, key.key_id, key.secret)


DEMO_CONSENT = "INSERT INTO shopper_consents (shopper_id, marketing) VALUES ($1, true)"


async def _seed_activity(conn: asyncpg.Connection, grocer_id: int, fuel_id: int) -> list[str]:
    cards: list[str] = []
    for n in range(SHOPPERS):
        # an address, a language and marketing consent: their notices land in .coalition/mail
        enrolled = await operations.enroll_shopper(
            conn,
            grocer_id,
            EnrollRequest(email=f"shopper{n}@demo.example", locale=("en", "ru")[n % 2]),
        )
        await conn.execute(DEMO_CONSENT, enrolled.shopper_id)
        cards.append(enrolled.card_number)
        for m, amount_minor in enumerate(PURCHASE_AMOUNTS_MINOR):
            ref = f"demo-sale-{n}-{m}"
            await operations.purchase(
                conn,
                grocer_id,
                PurchaseRequest(
                    partner_ref=ref,
                    card_number=enrolled.card_number,
                    amount_minor=amount_minor,
                    currency="EUR",
                ),
                idempotency_key=ref,
            )
    await operations.redeem(
        conn,
        fuel_id,
        RedemptionRequest(
            partner_ref="demo-redeem-0", card_number=cards[0], points=REDEEMED_POINTS
        ),
        idempotency_key="demo-redeem-0",
    )
    return cards


async def seed(dsn: str, data_dir: Path, master_key: str | None) -> str:
    """Seed once; return a summary to print (with the keys' secrets the first time only)."""
    conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    try:
        if await conn.fetchval("SELECT 1 FROM partners WHERE slug = $1", GROCER.slug):
            return (
                "already seeded (partners demo-grocer and demo-fuel); mint more keys with "
                "POST /v1/operator/partners/{id}/keys"
            )
        if await conn.fetchval("SELECT currency FROM network_settings") != "EUR":
            return "skipped: the demo prices are in EUR and this network uses another currency"
        box = keybox.load_or_create(data_dir, master_key)
        async with conn.transaction():
            grocer_id, grocer_key = await _seed_partner(conn, box, GROCER)
            fuel_id, fuel_key = await _seed_partner(conn, box, FUEL)
            await contacts.set_finance_contact(
                conn,
                grocer_id,
                email="finance@demo-grocer.example",
                locale="en",
                actor=DEMO_OPERATOR,
            )
            cards = await _seed_activity(conn, grocer_id, fuel_id)
    finally:
        await conn.close()
    keys = "\n".join(
        f"    {k.partner}: key_id {k.key_id}  secret {k.secret}" for k in (grocer_key, fuel_key)
    )
    return (
        f"2 partners, {len(cards)} shoppers (cards {', '.join(cards)}), "
        f"{len(cards) * len(PURCHASE_AMOUNTS_MINOR)} purchases, 1 redemption.\n"
        f"  partner API keys (shown once, sign requests with RFC 9421 hmac-sha256):\n{keys}"
    )
