"""Partner route: a purchase earns points."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from contracts.partners import PurchaseRequest, PurchaseResult
from gateway import metrics
from gateway.auth.signatures import Caller
from gateway.idempotency import Many, run_once
from gateway.routes._common import REPLAY_NOTE, documented
from infra.db import Conn
from partners import operations, purchase_many


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

    key = str(caller.idempotency_key)
    return await run_once(
        request,
        caller,
        lambda conn: operations.purchase(conn, caller.partner_id, data, idempotency_key=key),
        on_committed=count,
        many=Many(
            _purchases_together,
            purchase_many.Candidate(0, caller.partner_id, data, key),
            card_number=data.card_number,
        ),
    )


async def _purchases_together(
    conn: Conn, items: list[tuple[int, purchase_many.Candidate]]
) -> dict[int, PurchaseResult]:
    """A group's purchases: the plain ones written together (partners.purchase_many)."""
    candidates = [replace(candidate, handle=handle) for handle, candidate in items]
    return await purchase_many.post_plain(conn, candidates)


ROUTES = [create_purchase]
