"""Partner routes: the partner's own challenges (sponsor: that partner; another's answer 404)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter

from contracts.challenges import (
    CHALLENGES_LIMIT_DEFAULT,
    CHALLENGES_LIMIT_MAX,
    Challenge,
    ChallengeCreate,
    ChallengePage,
)
from gateway.auth.signatures import Caller
from gateway.idempotency import run_once
from gateway.routes._common import REPLAY_NOTE, PathId, documented, in_transaction
from shoppers.challenges import definitions

CURSOR_CHARS_MAX = 512


@post(
    "/v1/challenges",
    status_code=201,
    responses=documented(Challenge, f"The challenge, created. {REPLAY_NOTE}", 201),
)
async def create_challenge(
    request: Request[Any, Any, Any],
    data: JSONBody[ChallengeCreate],
    caller: NamedDependency[Caller],
) -> Response[bytes]:
    return await run_once(
        request,
        caller,
        lambda conn: definitions.create(
            conn, caller.partner_id, data, actor=f"partner:{caller.key_id}"
        ),
    )


@get("/v1/challenges/{challenge_id:int}")
async def get_challenge(
    request: Request[Any, Any, Any], challenge_id: PathId, caller: NamedDependency[Caller]
) -> Challenge:
    return await in_transaction(
        request, lambda conn: definitions.get(conn, caller.partner_id, challenge_id)
    )


@get("/v1/challenges")
async def list_challenges(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    cursor: Annotated[str | None, Parameter(max_length=CURSOR_CHARS_MAX)] = None,
    limit: Annotated[int, Parameter(ge=1, le=CHALLENGES_LIMIT_MAX)] = CHALLENGES_LIMIT_DEFAULT,
) -> ChallengePage:
    return await in_transaction(
        request,
        lambda conn: definitions.list_page(conn, caller.partner_id, cursor=cursor, limit=limit),
    )


ROUTES = [create_challenge, get_challenge, list_challenges]
