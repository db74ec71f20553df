"""Operator routes for partners: onboarding, versioned pricing and the rate limit."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

from contracts.partners import Partner, PartnerCreate, PricingVersionCreate, RateLimitUpdate
from gateway.auth.operator import provide_operator, require_role
from gateway.partner_state import PartnerGateway
from gateway.routes._common import PathId, in_transaction
from gateway.tokens import OperatorClaims, Role
from infra.db import Conn
from partners import directory, operations

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


@put(
    "/v1/operator/partners/{partner_id:int}/rate-limit",
    guards=[require_role(Role.ADMIN)],
    dependencies=OPERATOR,
)
async def set_rate_limit(
    request: Request[Any, Any, Any],
    partner_id: PathId,
    data: JSONBody[RateLimitUpdate],
    operator: NamedDependency[OperatorClaims],
) -> Partner:
    """The partner's per-key calls per second. This process applies it at once; other
    processes when their key cache's entries expire."""

    async def work(conn: Conn) -> tuple[Partner, list[str]]:
        await operations.set_rate_limit(conn, partner_id, data.rate_limit_per_s)
        keys = [k.key_id for k in await directory.list_keys(conn, partner_id)]
        return await operations.get_partner(conn, partner_id), keys

    found, key_ids = await in_transaction(request, work)
    forget_keys(request, key_ids)
    return found


def forget_keys(request: Request[Any, Any, Any], key_ids: list[str]) -> None:
    """Drop cached keys (and the limit they carry) so the next call reads them again."""
    gateway: PartnerGateway = request.app.state.partner_gateway
    for key_id in key_ids:
        gateway.keys.forget(key_id)


ROUTES = [create_partner, get_partner, add_pricing_version, set_rate_limit]
