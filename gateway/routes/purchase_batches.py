"""Partner route: a batch of purchases (an end-of-day file from offline stores)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from contracts.partners import PurchaseBatchRequest, PurchaseBatchResult
from gateway import metrics
from gateway.auth.signatures import Caller
from gateway.idempotency import run_once
from gateway.routes._common import REPLAY_NOTE, documented
from partners import operations

# MAX_BATCH_ITEMS purchases with a few lines each; the partner router's own limit (64 KiB)
# holds a single purchase, not a file. The signature guard reads the body under this bound too.
BATCH_BODY_BYTES_MAX = 1_048_576


@post(
    "/v1/purchases/batch",
    status_code=201,
    request_max_body_size=BATCH_BODY_BYTES_MAX,
    responses=documented(
        PurchaseBatchResult, f"The batch, one result per purchase. {REPLAY_NOTE}", 201
    ),
)
async def create_purchase_batch(
    request: Request[Any, Any, Any],
    data: JSONBody[PurchaseBatchRequest],
    caller: NamedDependency[Caller],
) -> Response[bytes]:
    def count(result: PurchaseBatchResult) -> None:
        metrics.BATCH_ITEMS.labels("created").inc(result.created)
        metrics.BATCH_ITEMS.labels("rejected").inc(result.rejected)
        metrics.BATCH_ITEMS.labels("duplicate").inc(result.duplicate)
        points_earned = sum(item.points_earned or 0 for item in result.results)
        metrics.POINTS_EARNED.labels(caller.partner_slug).inc(points_earned)

    return await run_once(
        request,
        caller,
        lambda conn: operations.purchase_batch(
            conn,
            caller.partner_id,
            data,
            idempotency_key=str(caller.idempotency_key),
            set_based=True,  # plain items in one statement (partners.purchase_many)
        ),
        on_committed=count,
        grouped=False,  # a file of its own: it would hold its neighbours' answers
    )


ROUTES = [create_purchase_batch]
