"""Shopper route: `GET /v1/me/membership`, the shopper's own paid membership."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, get
from litestar.di import NamedDependency, Provide

from contracts.membership import MyMembership
from gateway.auth.shopper import provide_shopper, shopper_bearer
from gateway.routes._common import in_transaction
from gateway.tokens import ShopperClaims
from partners.membership import service


@get("/me/membership")
async def get_my_membership(
    request: Request[Any, Any, Any], shopper: NamedDependency[ShopperClaims]
) -> MyMembership:
    return await in_transaction(request, lambda conn: service.mine(conn, shopper.shopper_id))


ME_MEMBERSHIP = Router(
    path="/v1",
    route_handlers=[get_my_membership],
    guards=[shopper_bearer],
    dependencies={"shopper": Provide(provide_shopper)},
    tags=["shopper"],
)
ROUTES = [ME_MEMBERSHIP]
