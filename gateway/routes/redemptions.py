"""Partner route: a redemption burns points at this partner's till."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from contracts.partners import RedemptionRequest, RedemptionResult
from gateway import metrics
from gateway.auth.signatures import Caller
from gateway.idempotency import Many, run_once
from gateway.routes._common import REPLAY_NOTE, documented
from partners import burn_many, operations


@post(
    "/v1/redemptions",
    status_code=201,
    responses=documented(RedemptionResult, f"The redemption, recorded. {REPLAY_NOTE}", 201),
)
async def create_redemption(
    request: Request[Any, Any, Any],
    data: JSONBody[RedemptionRequest],
    caller: NamedDependency[Caller],
) -> Response[bytes]:
    def count(result: RedemptionResult) -> None:
        metrics.POINTS_REDEEMED.labels(caller.partner_slug).inc(result.points_redeemed)

    key = str(caller.idempotency_key)
    return await run_once(
        request,
        caller,
        lambda conn: operations.redeem(conn, caller.partner_id, data, idempotency_key=key),
        on_committed=count,
        many=Many(
            burn_many.write_together,
            burn_many.Candidate(0, caller.partner_id, data, key),
            card_number=data.card_number,
        ),
    )


ROUTES = [create_redemption]
