"""Partner routes: the partner's own campaigns (another partner's answer 404)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter

from contracts.campaigns import (
    CAMPAIGNS_LIMIT_DEFAULT,
    CAMPAIGNS_LIMIT_MAX,
    Campaign,
    CampaignCreate,
    CampaignPage,
)
from gateway.auth.signatures import Caller
from gateway.idempotency import run_once
from gateway.routes._common import REPLAY_NOTE, PathId, documented, in_transaction
from partners import operations

CURSOR_CHARS_MAX = 512


@post(
    "/v1/campaigns",
    status_code=201,
    responses=documented(Campaign, f"The campaign, created. {REPLAY_NOTE}", 201),
)
async def create_campaign(
    request: Request[Any, Any, Any],
    data: JSONBody[CampaignCreate],
    caller: NamedDependency[Caller],
) -> Response[bytes]:
    return await run_once(
        request,
        caller,
        lambda conn: operations.create_campaign(
            conn, caller.partner_id, data, actor=f"partner:{caller.key_id}"
        ),
    )


@get("/v1/campaigns/{campaign_id:int}")
async def get_campaign(
    request: Request[Any, Any, Any], campaign_id: PathId, caller: NamedDependency[Caller]
) -> Campaign:
    return await in_transaction(
        request, lambda conn: operations.get_campaign(conn, caller.partner_id, campaign_id)
    )


@post(
    "/v1/campaigns/{campaign_id:int}/end",
    status_code=200,
    responses=documented(Campaign, f"The campaign, ended. {REPLAY_NOTE}", 200),
)
async def end_campaign(
    request: Request[Any, Any, Any],
    campaign_id: PathId,
    caller: NamedDependency[Caller],
) -> Response[bytes]:
    return await run_once(
        request,
        caller,
        lambda conn: operations.end_campaign(conn, caller.partner_id, campaign_id),
        status_code=200,
    )


@get("/v1/campaigns")
async def list_campaigns(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    cursor: Annotated[str | None, Parameter(max_length=CURSOR_CHARS_MAX)] = None,
    limit: Annotated[int, Parameter(ge=1, le=CAMPAIGNS_LIMIT_MAX)] = CAMPAIGNS_LIMIT_DEFAULT,
) -> CampaignPage:
    return await in_transaction(
        request,
        lambda conn: operations.list_campaigns(conn, caller.partner_id, cursor=cursor, limit=limit),
    )


ROUTES = [create_campaign, get_campaign, end_campaign, list_campaigns]
