"""The membership room's door: plans, sales, cancellation and the views (routes call these).

A sale, in order: the card and the plan are checked, the membership row is inserted (at most
one active per shopper), the first period's fee goes to the ledger (the seller owes it minus
its commission), the first month's bonus is granted, `membership.sold` is recorded. Every
step runs in the caller's transaction: a refusal leaves nothing behind.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg

from contracts.membership import (
    Membership,
    MembershipCancel,
    MembershipSale,
    MyMembership,
    Plan,
    PlanCreate,
    PlanPage,
)
from infra import outbox
from infra.db import Conn
from partners._common import atomic
from partners.errors import (
    CurrencyUnsupported,
    MembershipActive,
    MembershipNotActive,
    MembershipPlanNotSellable,
    MembershipPriceMismatch,
    NotFound,
    PartnerRefConflict,
)
from partners.membership import benefit, money, plans, queries, terms
from shoppers import service as shoppers

__all__ = [
    "cancel",
    "create_plan",
    "get",
    "get_plan",
    "list_plans",
    "mine",
    "sell",
]

OPERATOR = None  # the partner id an operator acts as: every partner's memberships


async def create_plan(conn: Conn, req: PlanCreate, *, actor: str) -> Plan:
    return await plans.create(conn, req, actor=actor)


async def get_plan(conn: Conn, plan_id: int) -> Plan:
    return await plans.get(conn, plan_id)


async def list_plans(conn: Conn, *, limit: int) -> PlanPage:
    return await plans.list_all(conn, limit=limit)


@atomic
async def sell(conn: Conn, partner_id: int, req: MembershipSale) -> Membership:
    now = datetime.now(UTC)
    network = await conn.fetchrow(queries.NETWORK)
    assert network is not None, "network_settings has its one row"
    if req.currency != network["currency"]:
        raise CurrencyUnsupported(req.currency, network["currency"])
    ctx = await conn.fetchrow(queries.SALE_CONTEXT, partner_id, req.card_number, req.partner_ref)
    assert ctx is not None, "the context has one row"
    holder = shoppers.holder_of(req.card_number, ctx["shopper_id"], ctx["card_status"])
    plan = await plans.get(conn, req.plan_id)
    if not plan.sellable:
        raise MembershipPlanNotSellable(plan.id)
    if req.price_minor != plan.price_minor:
        raise MembershipPriceMismatch(price_minor=plan.price_minor, collected_minor=req.price_minor)
    if ctx["ref_taken"]:
        raise PartnerRefConflict(req.partner_ref)
    _, period_end = terms.period_bounds(now, plan.term, 0)
    bonus_points = plan.benefits.monthly_bonus_points
    membership_id = await conn.fetchval(
        queries.INSERT_MEMBERSHIP,
        plan.id,
        holder.shopper_id,
        partner_id,
        req.partner_ref,
        req.auto_renew,
        now,
        period_end,
        now if bonus_points > 0 else None,
    )
    if membership_id is None:  # which unique key: a concurrent sale took the ref, or not
        ref = await conn.fetchrow(queries.SALE_CONTEXT, partner_id, None, req.partner_ref)
        if ref is not None and ref["ref_taken"]:
            raise PartnerRefConflict(req.partner_ref)
        raise MembershipActive()
    commission_bps = (
        plan.commission_bps
        if plan.commission_bps is not None
        else network["membership_commission_bps"]
    )
    await money.charge(
        conn,
        membership_id=membership_id,
        partner_id=partner_id,
        period_no=0,
        kind="sale",
        fee_minor=plan.price_minor,
        commission_bps=commission_bps,
        currency=plan.currency,
    )
    await benefit.grant_month(
        conn,
        membership_id=membership_id,
        shopper_id=holder.shopper_id,
        started_at=now,
        month_no=0,
        points=bonus_points,
        now=now,
    )
    sold = await _membership(conn, membership_id, partner_id)
    await _event(conn, "membership.sold", sold, plan_code=plan.code, price_minor=plan.price_minor)
    return sold


async def get(conn: Conn, partner_id: int | None, membership_id: int) -> Membership:
    """A partner sees only the memberships it sold (another's answer NotFound)."""
    return await _membership(conn, membership_id, partner_id)


@atomic
async def cancel(
    conn: Conn,
    partner_id: int | None,
    membership_id: int,
    req: MembershipCancel,
    *,
    actor: str,
) -> Membership:
    """Cancel now: refund the unused whole days of the period's fee (terms.refund_minor),
    reverse the bonus of the benefit month in progress, stop renewals."""
    now = datetime.now(UTC)
    row = await conn.fetchrow(queries.MEMBERSHIP_FOR_UPDATE, membership_id, partner_id)
    if row is None:
        raise NotFound("membership")
    if row["status"] != "active":
        raise MembershipNotActive(row["status"])
    paid = await money.period_charge(conn, membership_id, row["period_no"])
    refund_minor = terms.refund_minor(
        paid.fee_minor, period_start=row["period_start"], period_end=row["period_end"], now=now
    )
    network = await conn.fetchrow(queries.NETWORK)
    assert network is not None, "network_settings has its one row"
    await money.refund(
        conn,
        membership_id=membership_id,
        partner_id=row["partner_id"],
        period_no=row["period_no"],
        paid=paid,
        refund_minor=refund_minor,
        currency=network["currency"],
    )
    reversed_points, debt_points = await benefit.reverse_current_month(
        conn, membership_id=membership_id, started_at=row["started_at"], now=now
    )
    await conn.execute(queries.CANCEL, membership_id, now, actor, req.reason)
    cancelled = await _membership(conn, membership_id, partner_id)
    await _event(
        conn,
        "membership.cancelled",
        cancelled,
        refund_minor=refund_minor,
        points_reversed=reversed_points,
        points_debt=debt_points,
    )
    return cancelled


async def mine(conn: Conn, shopper_id: int) -> MyMembership:
    row = await conn.fetchrow(queries.MY_MEMBERSHIP, shopper_id)
    if row is None:
        return MyMembership(member=False)
    plan = await plans.get(conn, row["plan_id"])
    return MyMembership(
        member=row["status"] == "active",
        status=row["status"],
        plan=plan,
        auto_renew=row["auto_renew"],
        period_end=row["period_end"],
        bonus_points_granted=row["bonus_points_granted"] - row["bonus_points_reversed"],
    )


async def _membership(conn: Conn, membership_id: int, partner_id: int | None) -> Membership:
    row = await conn.fetchrow(queries.MEMBERSHIP, membership_id, partner_id)
    if row is None:
        raise NotFound("membership")
    return membership_of(row)


def membership_of(row: asyncpg.Record) -> Membership:
    return Membership(
        id=row["id"],
        plan_id=row["plan_id"],
        shopper_id=row["shopper_id"],
        partner_id=row["partner_id"],
        partner_ref=row["partner_ref"],
        status=row["status"],
        auto_renew=row["auto_renew"],
        started_at=row["started_at"],
        period_no=row["period_no"],
        period_start=row["period_start"],
        period_end=row["period_end"],
        cancelled_at=row["cancelled_at"],
        fees_minor=row["fees_minor"],
        commission_minor=row["commission_minor"],
        refunded_minor=row["refunded_minor"],
        bonus_points_granted=row["bonus_points_granted"],
        bonus_points_reversed=row["bonus_points_reversed"],
    )


async def _event(conn: Conn, event_type: str, m: Membership, **extra: Any) -> None:
    """To the selling partner, in the change's transaction: ids and money, no personal data."""
    await outbox.record(
        conn,
        event_type,
        partner_id=m.partner_id,
        shopper_id=m.shopper_id,
        payload={
            "membership_id": m.id,
            "plan_id": m.plan_id,
            "shopper_id": m.shopper_id,
            "partner_ref": m.partner_ref,
            "status": m.status,
            "period_no": m.period_no,
            "period_end": m.period_end.isoformat(),
            **{k: v for k, v in extra.items() if v is not None},
        },
    )
