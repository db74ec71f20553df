"""Partner routes: the partner's own earn rules (category multipliers, exclusions, minimum
basket), read and replaced through signed calls."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from contracts.partners import EarnRules, EarnRulesUpdate
from gateway.auth.signatures import Caller
from gateway.idempotency import run_once
from gateway.routes._common import REPLAY_NOTE, documented, in_transaction
from partners import operations


@get("/v1/earn-rules")
async def get_earn_rules(
    request: Request[Any, Any, Any], caller: NamedDependency[Caller]
) -> EarnRules:
    return await in_transaction(
        request, lambda conn: operations.earn_rules_of(conn, caller.partner_id)
    )


@post(
    "/v1/earn-rules",
    status_code=200,
    responses=documented(EarnRules, f"The earn rules now in force. {REPLAY_NOTE}", 200),
)
async def replace_earn_rules(
    request: Request[Any, Any, Any],
    data: JSONBody[EarnRulesUpdate],
    caller: NamedDependency[Caller],
) -> Response[bytes]:
    return await run_once(
        request,
        caller,
        lambda conn: operations.replace_earn_rules(
            conn, caller.partner_id, data, actor=f"partner:{caller.key_id}"
        ),
        status_code=200,
    )


ROUTES = [get_earn_rules, replace_earn_rules]
