"""Partner routes for shoppers: enrollment at a store, lookup by card at checkout."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from contracts.partners import Enrollment, EnrollRequest, ShopperView
from gateway.auth.signatures import Caller
from gateway.idempotency import run_once
from gateway.routes._common import REPLAY_NOTE, documented, in_transaction
from partners import operations


@post(
    "/v1/shoppers",
    status_code=201,
    responses=documented(Enrollment, f"The shopper, enrolled with a card. {REPLAY_NOTE}", 201),
)
async def enroll(
    request: Request[Any, Any, Any], data: JSONBody[EnrollRequest], caller: NamedDependency[Caller]
) -> Response[bytes]:
    return await run_once(
        request, caller, lambda conn: operations.enroll_shopper(conn, caller.partner_id, data)
    )


@get("/v1/shoppers/{card_number:str}")
async def shopper(request: Request[Any, Any, Any], card_number: FromPath[str]) -> ShopperView:
    return await in_transaction(request, lambda conn: operations.shopper_view(conn, card_number))


ROUTES = [enroll, shopper]
