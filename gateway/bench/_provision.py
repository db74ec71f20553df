"""Provisioning a bench network through the real API, plus one documented shortcut.

Partners, their pricing and API keys go through the operator API (POST /v1/operator/partners
and /keys). Funding purchases and the holds that burn-heavy captures go through the signed
partner API. The shortcut: 100,000 shoppers are bulk-inserted with SQL (one INSERT ...
generate_series for `shoppers`, one COPY for `shopper_cards`), since enrolling them over HTTP
would take minutes; the cards keep the Luhn rule (shoppers.luhn) and the rows are exactly what
`POST /v1/shoppers` writes for a partner-issued card (ledger accounts appear on first use).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import httpx
import msgspec

from contracts.signing import sign_request
from gateway.bench._requests import HOLD_POINTS, PartnerKey, card_number
from gateway.tokens import Role, SigningKey, mint_operator

OPERATOR_TOKEN_TTL_S = 3_600
PARTNER_RATE_LIMIT_PER_S = 100_000  # the contract's maximum: the bench measures, not throttles
ISSUE_PRICE_MICROS = 10_000
REDEMPTION_PRICE_MICROS = 8_000
EARN_POINTS = 1
EARN_SPEND_MINOR = 100
FUNDING_AMOUNT_MINOR = 10_000_000  # 100,000 points per funded shopper at 1 point per 100 minor
HOLD_EXPIRES_IN_S = 3_600
PROVISION_CONCURRENCY = 32
HTTP_TIMEOUT_S = 60.0
SHOPPER_INSERT_BATCH = 20_000


def operator_headers(key: SigningKey) -> dict[str, str]:
    token = mint_operator(key, subject="bench", role=Role.ADMIN, ttl_s=OPERATOR_TOKEN_TTL_S)
    return {"Authorization": f"Bearer {token}"}


async def create_partners(
    http: httpx.AsyncClient, key: SigningKey, *, count: int, run: str
) -> list[PartnerKey]:
    headers = operator_headers(key)
    partners: list[PartnerKey] = []
    for index in range(count):
        slug = f"bench-{run}-{index}"
        created = await http.post(
            "/v1/operator/partners",
            json={
                "name": f"Bench {run} {index}",
                "slug": slug,
                "issue_price_micros": ISSUE_PRICE_MICROS,
                "redemption_price_micros": REDEMPTION_PRICE_MICROS,
                "earn_points": EARN_POINTS,
                "earn_spend_minor": EARN_SPEND_MINOR,
                "rate_limit_per_s": PARTNER_RATE_LIMIT_PER_S,
            },
            headers=headers,
        )
        if created.status_code != 201:
            raise RuntimeError(f"creating partner {slug}: {created.status_code} {created.text}")
        partner_id = int(created.json()["id"])
        issued = await http.post(f"/v1/operator/partners/{partner_id}/keys", headers=headers)
        if issued.status_code != 201:
            raise RuntimeError(f"creating a key for {slug}: {issued.status_code} {issued.text}")
        partners.append(PartnerKey(partner_id, issued.json()["key_id"], issued.json()["secret"]))
    return partners


async def insert_shoppers(conn: asyncpg.Connection[Any], *, enrolled_by: int, count: int) -> int:
    """Cards card_number(0..count-1); kept from an earlier run on the same database."""
    last = card_number(count - 1)
    if await conn.fetchval("SELECT 1 FROM shopper_cards WHERE card_number = $1", last):
        return 0
    async with conn.transaction():
        for start in range(0, count, SHOPPER_INSERT_BATCH):
            size = min(SHOPPER_INSERT_BATCH, count - start)
            ids = await conn.fetch(
                "INSERT INTO shoppers (enrolled_by_partner_id) "
                "SELECT $1 FROM generate_series(1, $2) RETURNING id",
                enrolled_by,
                size,
            )
            await conn.copy_records_to_table(
                "shopper_cards",
                columns=["card_number", "shopper_id", "issued_by"],
                records=[
                    (card_number(start + offset), row["id"], "partner")
                    for offset, row in enumerate(ids)
                ],
            )
    return count


async def signed_post(
    http: httpx.AsyncClient, partner: PartnerKey, path: str, payload: dict[str, Any], idem: str
) -> httpx.Response:
    body = msgspec.json.encode(payload)
    headers = {"Content-Type": "application/json", "Idempotency-Key": idem}
    sign_request(
        "POST",
        str(http.base_url.join(path)),
        headers,
        body,
        key_id=partner.key_id,
        secret=partner.secret,
    )
    return await http.post(path, content=body, headers=headers)


async def _bounded(jobs: Sequence[Callable[[], Awaitable[None]]]) -> None:
    gate = asyncio.Semaphore(PROVISION_CONCURRENCY)

    async def one(job: Callable[[], Awaitable[None]]) -> None:
        async with gate:
            await job()

    await asyncio.gather(*(one(job) for job in jobs))


async def fund(
    http: httpx.AsyncClient, partners: Sequence[PartnerKey], cards: Sequence[str], *, run: str
) -> None:
    """One large purchase per card, spread over the partners, through the signed API."""

    def job(index: int, card: str) -> Callable[[], Awaitable[None]]:
        async def go() -> None:
            ref = f"fund-{run}-{index}"
            answer = await signed_post(
                http,
                partners[index % len(partners)],
                "/v1/purchases",
                {
                    "partner_ref": ref,
                    "card_number": card,
                    "amount_minor": FUNDING_AMOUNT_MINOR,
                    "currency": "EUR",
                },
                ref,
            )
            if answer.status_code != 201:
                raise RuntimeError(f"funding {card}: {answer.status_code} {answer.text}")

        return go

    await _bounded([job(i, card) for i, card in enumerate(cards)])


async def open_holds(
    http: httpx.AsyncClient,
    partners: Sequence[PartnerKey],
    cards: Sequence[str],
    *,
    count: int,
    run: str,
) -> list[tuple[int, str]]:
    """`count` open holds (partner index, hold id) for burn-heavy's captures."""
    holds: list[tuple[int, str]] = [(0, "")] * count

    def job(index: int) -> Callable[[], Awaitable[None]]:
        async def go() -> None:
            ref = f"hold-{run}-{index}"
            partner = index % len(partners)
            answer = await signed_post(
                http,
                partners[partner],
                "/v1/holds",
                {
                    "partner_ref": ref,
                    "card_number": cards[index % len(cards)],
                    "points": HOLD_POINTS,
                    "expires_in_s": HOLD_EXPIRES_IN_S,
                },
                ref,
            )
            if answer.status_code != 201:
                raise RuntimeError(f"opening hold {ref}: {answer.status_code} {answer.text}")
            holds[index] = (partner, str(answer.json()["hold_id"]))

        return go

    await _bounded([job(i) for i in range(count)])
    return holds
