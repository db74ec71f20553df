"""Operator routes for program settings: the lifetime of points earned from now on."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, put
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody

from contracts.partners import PointsLifetime, PointsLifetimeUpdate
from gateway.auth.operator import provide_operator, require_role
from gateway.routes._common import in_transaction
from gateway.tokens import OperatorClaims, Role
from shoppers import expiry

READERS = require_role(Role.ADMIN, Role.FINANCE, Role.SUPPORT, Role.AUDITOR)
CONFIGURERS = require_role(Role.ADMIN)
OPERATOR = {"operator": Provide(provide_operator)}


@get("/v1/operator/points-lifetime", guards=[READERS])
async def get_points_lifetime(request: Request[Any, Any, Any]) -> PointsLifetime:
    return await in_transaction(request, expiry.points_lifetime)


@put("/v1/operator/points-lifetime", guards=[CONFIGURERS], dependencies=OPERATOR)
async def set_points_lifetime(
    request: Request[Any, Any, Any],
    data: JSONBody[PointsLifetimeUpdate],
    operator: NamedDependency[OperatorClaims],
) -> PointsLifetime:
    actor = f"{operator.role.value}:{operator.subject}"
    return await in_transaction(
        request, lambda conn: expiry.change_points_lifetime(conn, data, actor=actor)
    )


ROUTES = [get_points_lifetime, set_points_lifetime]
