"""Partner route: a purchase earns points."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from contracts.partners import PurchaseRequest, PurchaseResult
from gateway import metrics
from gateway.auth.signatures import Caller
from gateway.idempotency import run_once
from gateway.routes._common import REPLAY_NOTE, documented
from partners import operations


@post(
    "/v1/purchases",
    status_code=201,
    responses=documented(PurchaseResult, f"The purchase, recorded. {REPLAY_NOTE}", 201),
)
async def create_purchase(
    request: Request[Any, Any, Any],
    data: JSONBody[PurchaseRequest],
    caller: NamedDependency[Caller],
) -> Response[bytes]:
    def count(result: PurchaseResult) -> None:
        metrics.POINTS_EARNED.labels(caller.partner_slug).inc(result.points_earned)

    return await run_once(
        request,
        caller,
        lambda conn: operations.purchase(
            conn, caller.partner_id, data, idempotency_key=str(caller.idempotency_key)
        ),
        on_committed=count,
    )


ROUTES = [create_purchase]
