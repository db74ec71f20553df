"""Operator routes: membership plans (role admin to create), and memberships of any partner
(read by every role; cancelled by admin)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, Parameter

from contracts.membership import (
    PLANS_LIMIT_MAX,
    Membership,
    MembershipCancel,
    Plan,
    PlanCreate,
    PlanPage,
)
from gateway.auth.operator import provide_operator, require_role
from gateway.routes._common import PathId, in_transaction
from gateway.tokens import OperatorClaims, Role
from partners.membership import service

OPERATOR = {"operator": Provide(provide_operator)}
PLANS_LIMIT_DEFAULT = 50


@post("/v1/operator/membership-plans", guards=[require_role(Role.ADMIN)], dependencies=OPERATOR)
async def create_plan(
    request: Request[Any, Any, Any],
    data: JSONBody[PlanCreate],
    operator: NamedDependency[OperatorClaims],
) -> Plan:
    return await in_transaction(
        request,
        lambda conn: service.create_plan(conn, data, actor=f"operator:{operator.subject}"),
    )


@get("/v1/operator/membership-plans/{plan_id:int}", guards=[require_role(*Role)])
async def get_plan(request: Request[Any, Any, Any], plan_id: PathId) -> Plan:
    return await in_transaction(request, lambda conn: service.get_plan(conn, plan_id))


@get("/v1/operator/membership-plans", guards=[require_role(*Role)])
async def list_plans(
    request: Request[Any, Any, Any],
    limit: Annotated[int, Parameter(ge=1, le=PLANS_LIMIT_MAX)] = PLANS_LIMIT_DEFAULT,
) -> PlanPage:
    return await in_transaction(request, lambda conn: service.list_plans(conn, limit=limit))


@get("/v1/operator/memberships/{membership_id:int}", guards=[require_role(*Role)])
async def get_membership(request: Request[Any, Any, Any], membership_id: PathId) -> Membership:
    return await in_transaction(
        request, lambda conn: service.get(conn, service.OPERATOR, membership_id)
    )


@post(
    "/v1/operator/memberships/{membership_id:int}/cancel",
    status_code=200,
    guards=[require_role(Role.ADMIN)],
    dependencies=OPERATOR,
)
async def cancel_membership(
    request: Request[Any, Any, Any],
    membership_id: PathId,
    data: JSONBody[MembershipCancel],
    operator: NamedDependency[OperatorClaims],
) -> Membership:
    return await in_transaction(
        request,
        lambda conn: service.cancel(
            conn, service.OPERATOR, membership_id, data, actor=f"operator:{operator.subject}"
        ),
    )


ROUTES = [create_plan, get_plan, list_plans, get_membership, cancel_membership]
