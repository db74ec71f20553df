"""Operator routes: network challenges, funded by network marketing (role admin to create)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, Parameter

from contracts.challenges import (
    CHALLENGES_LIMIT_DEFAULT,
    CHALLENGES_LIMIT_MAX,
    Challenge,
    ChallengeCreate,
    ChallengePage,
)
from gateway.auth.operator import provide_operator, require_role
from gateway.routes._common import PathId, in_transaction
from gateway.tokens import OperatorClaims, Role
from shoppers.challenges import definitions

OPERATOR = {"operator": Provide(provide_operator)}
CURSOR_CHARS_MAX = 512
NETWORK = None  # the sponsor of network challenges


@post(
    "/v1/operator/challenges",
    status_code=201,
    guards=[require_role(Role.ADMIN)],
    dependencies=OPERATOR,
)
async def create_network_challenge(
    request: Request[Any, Any, Any],
    data: JSONBody[ChallengeCreate],
    operator: NamedDependency[OperatorClaims],
) -> Challenge:
    return await in_transaction(
        request,
        lambda conn: definitions.create(conn, NETWORK, data, actor=f"operator:{operator.subject}"),
    )


@get("/v1/operator/challenges/{challenge_id:int}", guards=[require_role(*Role)])
async def get_network_challenge(request: Request[Any, Any, Any], challenge_id: PathId) -> Challenge:
    return await in_transaction(request, lambda conn: definitions.get(conn, NETWORK, challenge_id))


@get("/v1/operator/challenges", guards=[require_role(*Role)])
async def list_network_challenges(
    request: Request[Any, Any, Any],
    cursor: Annotated[str | None, Parameter(max_length=CURSOR_CHARS_MAX)] = None,
    limit: Annotated[int, Parameter(ge=1, le=CHALLENGES_LIMIT_MAX)] = CHALLENGES_LIMIT_DEFAULT,
) -> ChallengePage:
    return await in_transaction(
        request,
        lambda conn: definitions.list_page(conn, NETWORK, cursor=cursor, limit=limit),
    )


ROUTES = [create_network_challenge, get_network_challenge, list_network_challenges]
