"""Operator routes for partners: onboarding and versioned pricing."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

from contracts.partners import Partner, PartnerCreate, PricingVersionCreate
from gateway.auth.operator import provide_operator, require_role
from gateway.routes._common import PathId, in_transaction
from gateway.tokens import OperatorClaims, Role
from partners import operations

OPERATOR = {"operator": Provide(provide_operator)}


@post("/v1/operator/partners", guards=[require_role(Role.ADMIN)], dependencies=OPERATOR)
async def create_partner(
    request: Request[Any, Any, Any],
    data: JSONBody[PartnerCreate],
    operator: NamedDependency[OperatorClaims],
) -> Partner:
    return await in_transaction(
        request, lambda conn: operations.create_partner(conn, data, operator=operator.subject)
    )


@get("/v1/operator/partners/{partner_id:int}", guards=[require_role(*Role)])
async def get_partner(request: Request[Any, Any, Any], partner_id: PathId) -> Partner:
    return await in_transaction(request, lambda conn: operations.get_partner(conn, partner_id))


@post(
    "/v1/operator/partners/{partner_id:int}/pricing",
    guards=[require_role(Role.ADMIN)],
    dependencies=OPERATOR,
)
async def add_pricing_version(
    request: Request[Any, Any, Any],
    partner_id: PathId,
    data: JSONBody[PricingVersionCreate],
    operator: NamedDependency[OperatorClaims],
) -> Partner:
    return await in_transaction(
        request,
        lambda conn: operations.add_pricing_version(
            conn, partner_id, data, operator=operator.subject
        ),
    )


ROUTES = [create_partner, get_partner, add_pricing_version]
