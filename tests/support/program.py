"""Helpers for program-rule tests on real PostgreSQL: partners, shoppers, purchases, campaigns
through the service functions (the same doors the routes call)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from contracts.campaigns import Campaign, CampaignConditions, CampaignCreate, CampaignReward
from contracts.partners import Line, PartnerCreate, PurchaseRequest, PurchaseResult, Quote
from contracts.partners import QuoteRequest as QuoteReq
from partners import operations
from shoppers import service as shoppers

_refs = itertools.count(1)


async def partner(
    pool: asyncpg.Pool, slug: str, *, earn_points: int = 1, earn_spend_minor: int = 100
) -> int:
    async with pool.acquire() as conn, conn.transaction():
        created = await operations.create_partner(
            conn,
            PartnerCreate(
                name=slug.title(),
                slug=slug,
                issue_price_micros=10_000,
                redemption_price_micros=8_000,
                earn_points=earn_points,
                earn_spend_minor=earn_spend_minor,
            ),
            operator="test",
        )
    return created.id


async def shopper(pool: asyncpg.Pool, partner_id: int) -> shoppers.CardHolder:
    async with pool.acquire() as conn, conn.transaction():
        return await shoppers.enroll(conn, partner_id=partner_id, card_number=None)


async def buy(
    pool: asyncpg.Pool,
    partner_id: int,
    card_number: str,
    amount_minor: int,
    *,
    lines: list[tuple[str, int]] | None = None,
) -> PurchaseResult:
    ref = f"p-{next(_refs)}"
    request = PurchaseRequest(
        partner_ref=ref,
        card_number=card_number,
        amount_minor=amount_minor,
        currency="EUR",
        lines=None
        if lines is None
        else [Line(sku=f"sku-{i}", category=c, amount_minor=a) for i, (c, a) in enumerate(lines)],
    )
    async with pool.acquire() as conn, conn.transaction():
        return await operations.purchase(conn, partner_id, request, idempotency_key=ref)


async def quote(
    pool: asyncpg.Pool,
    partner_id: int,
    amount_minor: int,
    *,
    card_number: str | None = None,
    lines: list[tuple[str, int]] | None = None,
) -> Quote:
    request = QuoteReq(
        amount_minor=amount_minor,
        card_number=card_number,
        lines=None
        if lines is None
        else [Line(sku=f"sku-{i}", category=c, amount_minor=a) for i, (c, a) in enumerate(lines)],
    )
    async with pool.acquire() as conn, conn.transaction():
        return await operations.quote(conn, partner_id, request)


async def campaign(
    pool: asyncpg.Pool,
    partner_id: int | None,
    *,
    budget_points: int = 1_000_000,
    per_shopper_cap_points: int = 1_000_000,
    multiplier_bps: int | None = None,
    bonus_points: int | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    **conditions: Any,
) -> Campaign:
    now = datetime.now(UTC)
    request = CampaignCreate(
        name=f"campaign {next(_refs)}",
        starts_at=starts_at or now - timedelta(minutes=1),
        ends_at=ends_at or now + timedelta(days=1),
        conditions=CampaignConditions(**conditions),
        reward=CampaignReward(multiplier_bps=multiplier_bps, bonus_points=bonus_points),
        budget_points=budget_points,
        per_shopper_cap_points=per_shopper_cap_points,
    )
    async with pool.acquire() as conn, conn.transaction():
        return await operations.create_campaign(conn, partner_id, request, actor="test")


async def end_all_campaigns(pool: asyncpg.Pool) -> None:
    await pool.execute("UPDATE campaigns SET ended_at = now() WHERE ended_at IS NULL")


async def balance(pool: asyncpg.Pool, card_number: str) -> int:
    async with pool.acquire() as conn, conn.transaction():
        return (await operations.shopper_view(conn, card_number)).balance
