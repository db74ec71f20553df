"""Operator routes: network-wide campaigns, paid by network marketing (role admin to change)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, Parameter

from contracts.campaigns import (
    CAMPAIGNS_LIMIT_DEFAULT,
    CAMPAIGNS_LIMIT_MAX,
    Campaign,
    CampaignBurnDown,
    CampaignCreate,
    CampaignPage,
)
from gateway.auth.operator import provide_operator, require_role
from gateway.routes._common import PathId, in_transaction
from gateway.tokens import OperatorClaims, Role
from partners import operations

OPERATOR = {"operator": Provide(provide_operator)}
CURSOR_CHARS_MAX = 512
NETWORK = None  # the partner id of network campaigns


@post("/v1/operator/campaigns", guards=[require_role(Role.ADMIN)], dependencies=OPERATOR)
async def create_network_campaign(
    request: Request[Any, Any, Any],
    data: JSONBody[CampaignCreate],
    operator: NamedDependency[OperatorClaims],
) -> Campaign:
    return await in_transaction(
        request,
        lambda conn: operations.create_campaign(
            conn, NETWORK, data, actor=f"operator:{operator.subject}"
        ),
    )


@get("/v1/operator/campaigns/{campaign_id:int}", guards=[require_role(*Role)])
async def get_network_campaign(request: Request[Any, Any, Any], campaign_id: PathId) -> Campaign:
    return await in_transaction(
        request, lambda conn: operations.get_campaign(conn, NETWORK, campaign_id)
    )


@get("/v1/operator/campaigns/{campaign_id:int}/burn-down", guards=[require_role(*Role)])
async def network_campaign_burn_down(
    request: Request[Any, Any, Any], campaign_id: PathId
) -> CampaignBurnDown:
    """The budget left at the end of each UTC day, from the start to min(stop, today)."""
    today = datetime.now(UTC).date()
    return await in_transaction(
        request,
        lambda conn: operations.campaign_burn_down(conn, NETWORK, campaign_id, today=today),
    )


@post(
    "/v1/operator/campaigns/{campaign_id:int}/end",
    status_code=200,
    guards=[require_role(Role.ADMIN)],
)
async def end_network_campaign(request: Request[Any, Any, Any], campaign_id: PathId) -> Campaign:
    return await in_transaction(
        request, lambda conn: operations.end_campaign(conn, NETWORK, campaign_id)
    )


@get("/v1/operator/campaigns", guards=[require_role(*Role)])
async def list_network_campaigns(
    request: Request[Any, Any, Any],
    cursor: Annotated[str | None, Parameter(max_length=CURSOR_CHARS_MAX)] = None,
    limit: Annotated[int, Parameter(ge=1, le=CAMPAIGNS_LIMIT_MAX)] = CAMPAIGNS_LIMIT_DEFAULT,
) -> CampaignPage:
    return await in_transaction(
        request,
        lambda conn: operations.list_campaigns(conn, NETWORK, cursor=cursor, limit=limit),
    )


ROUTES = [
    create_network_campaign,
    get_network_campaign,
    network_campaign_burn_down,
    end_network_campaign,
    list_network_campaigns,
]
