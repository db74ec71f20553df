"""Operator routes for a partner's webhook endpoints: read them and their deliveries, retry one.

The partner's own routes (webhook_endpoints.py) call the same `partners.webhooks` functions with
the signed caller's partner id; these take it from the path. Operators read and retry only:
creating, changing, deleting an endpoint and rotating its secret stay the partner's, and no
answer here carries a secret. Every operator role reads (as it reads the partner itself);
retrying is support work (admin and support, as the shopper support routes).
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.params import FromPath, QueryParameter

from contracts.webhooks import (
    DELIVERIES_LIMIT_DEFAULT,
    DELIVERIES_LIMIT_MAX,
    ENDPOINTS_LIMIT_DEFAULT,
    ENDPOINTS_LIMIT_MAX,
    DeliveryState,
    WebhookDelivery,
    WebhookDeliveryPage,
    WebhookEndpointPage,
)
from gateway.auth.operator import require_role
from gateway.routes._common import PathId, in_transaction
from gateway.routes.webhook_endpoints import Cursor
from gateway.tokens import Role
from infra.db import Conn
from partners import operations
from partners.webhooks import deliveries, endpoints

BASE = "/v1/operator/partners/{partner_id:int}/webhook-endpoints"
DELIVERIES = BASE + "/{endpoint_id:str}/deliveries"
READERS = [require_role(*Role)]
RETRIERS = [require_role(Role.ADMIN, Role.SUPPORT)]


@get(BASE, guards=READERS)
async def list_partner_endpoints(
    request: Request[Any, Any, Any],
    partner_id: PathId,
    cursor: Cursor = None,
    limit: Annotated[int, QueryParameter(ge=1, le=ENDPOINTS_LIMIT_MAX)] = ENDPOINTS_LIMIT_DEFAULT,
) -> WebhookEndpointPage:
    """The partner's endpoints, oldest first, without their secrets; an unknown partner is 404."""

    async def read(conn: Conn) -> WebhookEndpointPage:
        await operations.get_partner(conn, partner_id)  # raises NotFound
        return await endpoints.list_page(conn, partner_id, cursor=cursor, limit=limit)

    return await in_transaction(request, read)


@get(DELIVERIES, guards=READERS)
async def list_partner_deliveries(
    request: Request[Any, Any, Any],
    partner_id: PathId,
    endpoint_id: FromPath[str],
    # `state` names Litestar's app state: the query parameter is aliased
    delivery_state: Annotated[DeliveryState | None, QueryParameter(name="state")] = None,
    cursor: Cursor = None,
    limit: Annotated[int, QueryParameter(ge=1, le=DELIVERIES_LIMIT_MAX)] = DELIVERIES_LIMIT_DEFAULT,
) -> WebhookDeliveryPage:
    """The endpoint's deliveries, newest first; another partner's endpoint is 404."""
    return await in_transaction(
        request,
        lambda conn: deliveries.list_page(
            conn, partner_id, endpoint_id, state=delivery_state, cursor=cursor, limit=limit
        ),
    )


@post(DELIVERIES + "/{message_id:str}/retry", status_code=202, guards=RETRIERS)
async def retry_partner_delivery(
    request: Request[Any, Any, Any],
    partner_id: PathId,
    endpoint_id: FromPath[str],
    message_id: FromPath[str],
) -> WebhookDelivery:
    """The delivery, due again now (`manual`); 409 while it is being sent or the endpoint is
    disabled. No Idempotency-Key, as on every operator route: a repeated retry queues the
    delivery again, which at worst sends it once more (delivery is at least once anyway)."""
    return await in_transaction(
        request, lambda conn: deliveries.retry(conn, partner_id, endpoint_id, message_id)
    )


ROUTES = [list_partner_endpoints, list_partner_deliveries, retry_partner_delivery]
