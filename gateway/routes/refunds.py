"""Partner route: refund (part of) a purchase or a redemption."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from contracts.partners import RefundRequest, RefundResult
from gateway.auth.signatures import Caller
from gateway.idempotency import run_once
from gateway.routes._common import REPLAY_NOTE, documented
from partners import operations


@post(
    "/v1/refunds",
    status_code=201,
    responses=documented(RefundResult, f"The refund, recorded. {REPLAY_NOTE}", 201),
)
async def create_refund(
    request: Request[Any, Any, Any], data: JSONBody[RefundRequest], caller: NamedDependency[Caller]
) -> Response[bytes]:
    return await run_once(
        request,
        caller,
        lambda conn: operations.refund(
            conn, caller.partner_id, data, idempotency_key=str(caller.idempotency_key)
        ),
        locks_ref=data.original_partner_ref,
    )


ROUTES = [create_refund]
