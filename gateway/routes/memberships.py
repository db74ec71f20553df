"""Partner routes: paid memberships the partner sells (another partner's answer 404)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from contracts.membership import Membership, MembershipCancel, MembershipSale
from gateway.auth.signatures import Caller
from gateway.idempotency import run_once
from gateway.routes._common import REPLAY_NOTE, PathId, documented, in_transaction
from partners.membership import service


@post(
    "/v1/memberships",
    status_code=201,
    responses=documented(Membership, f"The membership, sold. {REPLAY_NOTE}", 201),
)
async def sell_membership(
    request: Request[Any, Any, Any],
    data: JSONBody[MembershipSale],
    caller: NamedDependency[Caller],
) -> Response[bytes]:
    return await run_once(request, caller, lambda conn: service.sell(conn, caller.partner_id, data))


@get("/v1/memberships/{membership_id:int}")
async def get_membership(
    request: Request[Any, Any, Any], membership_id: PathId, caller: NamedDependency[Caller]
) -> Membership:
    return await in_transaction(
        request, lambda conn: service.get(conn, caller.partner_id, membership_id)
    )


@post(
    "/v1/memberships/{membership_id:int}/cancel",
    status_code=200,
    responses=documented(Membership, f"The membership, cancelled. {REPLAY_NOTE}", 200),
)
async def cancel_membership(
    request: Request[Any, Any, Any],
    membership_id: PathId,
    data: JSONBody[MembershipCancel],
    caller: NamedDependency[Caller],
) -> Response[bytes]:
    return await run_once(
        request,
        caller,
        lambda conn: service.cancel(
            conn, caller.partner_id, membership_id, data, actor=f"partner:{caller.key_id}"
        ),
        status_code=200,
    )


ROUTES = [sell_membership, get_membership, cancel_membership]
