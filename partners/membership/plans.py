"""Membership plans: defined by operators (role admin), immutable once created.

A plan version never changes (a trigger refuses it, migration 0170): creating a plan with an
existing code makes the next version, which replaces the older one for new sales; memberships
already sold keep the version they bought, renewals included.
"""

from __future__ import annotations

import asyncpg

from contracts.membership import PLANS_LIMIT_MAX, Plan, PlanBenefits, PlanCreate, PlanPage
from infra.db import Conn
from partners.errors import MembershipPlanInvalid, NotFound
from partners.membership import queries
from shoppers import tiers


async def create(conn: Conn, req: PlanCreate, *, actor: str) -> Plan:
    network = await conn.fetchrow(queries.NETWORK)
    assert network is not None, "network_settings has its one row"
    if req.currency != network["currency"]:
        raise MembershipPlanInvalid(f"plans are priced in the network's {network['currency']}")
    floor = req.benefits.tier_floor
    if floor is not None and floor not in tiers.TIER_BY_NAME:
        raise MembershipPlanInvalid(
            f"unknown tier {floor!r} (one of {', '.join(tiers.TIER_BY_NAME)})"
        )
    b = req.benefits
    await conn.execute(queries.LOCK_PLAN_CODE, req.code)  # held to the caller's commit
    plan_id: int = await conn.fetchval(
        queries.INSERT_PLAN,
        req.code,
        req.name,
        req.price_minor,
        req.currency,
        req.term,
        b.earn_multiplier_bps,
        b.monthly_bonus_points,
        floor,
        list(b.perks),
        req.commission_bps,
        actor,
    )
    return await get(conn, plan_id)


async def get(conn: Conn, plan_id: int) -> Plan:
    row = await conn.fetchrow(queries.PLAN, plan_id)
    if row is None:
        raise NotFound("membership plan")
    return plan_of(row)


async def list_all(conn: Conn, *, limit: int) -> PlanPage:
    assert 1 <= limit <= PLANS_LIMIT_MAX, limit
    return PlanPage(items=[plan_of(row) for row in await conn.fetch(queries.PLANS, limit)])


def plan_of(row: asyncpg.Record) -> Plan:
    return Plan(
        id=row["id"],
        code=row["code"],
        version=row["version"],
        name=row["name"],
        price_minor=row["price_minor"],
        currency=row["currency"],
        term=row["term"],
        benefits=PlanBenefits(
            earn_multiplier_bps=row["earn_multiplier_bps"],
            monthly_bonus_points=row["monthly_bonus_points"],
            tier_floor=row["tier_floor"],
            perks=list(row["perks"]),
        ),
        commission_bps=row["commission_bps"],
        sellable=row["sellable"],
        created_at=row["created_at"],
    )
