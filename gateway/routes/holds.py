"""Partner routes for holds: reserve points at checkout, then capture or void."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from contracts.partners import CaptureRequest, HoldRequest, HoldResult
from gateway import metrics
from gateway.auth.signatures import Caller
from gateway.idempotency import Many, run_once
from gateway.routes._common import REPLAY_NOTE, documented
from partners import burn_many, operations


@post(
    "/v1/holds",
    status_code=201,
    responses=documented(HoldResult, f"The hold, open. {REPLAY_NOTE}", 201),
)
async def create_hold(
    request: Request[Any, Any, Any], data: JSONBody[HoldRequest], caller: NamedDependency[Caller]
) -> Response[bytes]:
    key = str(caller.idempotency_key)
    return await run_once(
        request,
        caller,
        lambda conn: operations.hold(conn, caller.partner_id, data, idempotency_key=key),
        many=Many(
            burn_many.write_together,
            burn_many.Candidate(0, caller.partner_id, data, key),
            card_number=data.card_number,
        ),
    )


@post(
    "/v1/holds/{hold_id:str}/capture",
    status_code=200,
    responses=documented(HoldResult, f"The hold, captured. {REPLAY_NOTE}", 200),
)
async def capture_hold(
    request: Request[Any, Any, Any],
    hold_id: FromPath[str],
    data: JSONBody[CaptureRequest],
    caller: NamedDependency[Caller],
) -> Response[bytes]:
    def count(result: HoldResult) -> None:
        metrics.POINTS_REDEEMED.labels(caller.partner_slug).inc(result.points_captured)

    capture = burn_many.Candidate(
        0, caller.partner_id, data, str(caller.idempotency_key), hold_id=hold_id
    )
    return await run_once(
        request,
        caller,
        lambda conn: operations.capture_hold(conn, caller.partner_id, hold_id, data),
        status_code=200,
        on_committed=count,
        many=Many(burn_many.write_together, capture),
    )


@post(
    "/v1/holds/{hold_id:str}/void",
    status_code=200,
    responses=documented(HoldResult, f"The hold, voided. {REPLAY_NOTE}", 200),
)
async def void_hold(
    request: Request[Any, Any, Any], hold_id: FromPath[str], caller: NamedDependency[Caller]
) -> Response[bytes]:
    return await run_once(
        request,
        caller,
        lambda conn: operations.void_hold(conn, caller.partner_id, hold_id),
        status_code=200,
    )


ROUTES = [create_hold, capture_hold, void_hold]
