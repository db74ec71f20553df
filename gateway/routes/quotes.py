"""Partner route: the points a purchase would earn, posting nothing."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from contracts.partners import Quote, QuoteRequest
from gateway.auth.signatures import Caller
from gateway.routes._common import in_transaction
from partners import operations


@post("/v1/quotes", status_code=200)
async def create_quote(
    request: Request[Any, Any, Any], data: JSONBody[QuoteRequest], caller: NamedDependency[Caller]
) -> Quote:
    return await in_transaction(
        request, lambda conn: operations.quote(conn, caller.partner_id, data)
    )


ROUTES = [create_quote]
