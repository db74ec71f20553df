"""Partner routes: webhook endpoints, their signing secrets and their deliveries (issue 16).

Every mutating call, PATCH and DELETE included, needs an Idempotency-Key and goes through
`run_once`. A URL is checked for SSRF (names resolved) before the call's transaction opens,
so a slow DNS answer never holds a pooled connection or a group commit.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from contracts.errors import ErrorCode
from contracts.webhooks import (
    DELIVERIES_LIMIT_DEFAULT,
    DELIVERIES_LIMIT_MAX,
    ENDPOINTS_LIMIT_DEFAULT,
    ENDPOINTS_LIMIT_MAX,
    DeliveryState,
    WebhookDelivery,
    WebhookDeliveryPage,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointPage,
    WebhookEndpointUpdate,
    WebhookReplay,
    WebhookReplayRequest,
    WebhookSecretRotated,
)
from gateway.auth.signatures import IDEMPOTENCY_KEY_PATTERN, Caller
from gateway.errors import ApiError
from gateway.idempotency import REPLAYED_HEADER, run_once
from gateway.partner_state import PartnerGateway
from gateway.routes._common import REPLAY_NOTE, documented, in_transaction
from gateway.state import AppState
from infra.settings import Settings
from partners.keybox import KeyBox
from partners.webhooks import deliveries, endpoints

BASE = "/v1/webhook-endpoints"
ONE = BASE + "/{endpoint_id:str}"
CURSOR_CHARS_MAX = 512
# The answers that carry a signing secret must not be kept by any cache.
NO_STORE = {"Cache-Control": "no-store"}
Cursor = Annotated[str | None, QueryParameter(max_length=CURSOR_CHARS_MAX)]


def _keybox(request: Request[Any, Any, Any]) -> KeyBox:
    gateway: PartnerGateway = request.app.state.partner_gateway
    return gateway.keybox


def _settings(request: Request[Any, Any, Any]) -> Settings:
    app_state: AppState = request.app.state.app
    return app_state.settings


def _require_idempotency_key(caller: Caller) -> None:
    """The guard requires the header on POST; PATCH and DELETE change things too."""
    key = caller.idempotency_key
    if key is None:
        raise ApiError(
            400, ErrorCode.IDEMPOTENCY_KEY_REQUIRED, "this call needs an Idempotency-Key header"
        )
    if not IDEMPOTENCY_KEY_PATTERN.match(key):
        raise ApiError(
            400,
            ErrorCode.VALIDATION_FAILED,
            "Idempotency-Key must be 1-255 visible ASCII characters",
        )


@post(
    BASE,
    status_code=201,
    response_headers=NO_STORE,
    responses=documented(
        WebhookEndpointCreated,
        f"The endpoint, with its signing secret (shown only here and on rotation). {REPLAY_NOTE}",
        201,
    ),
)
async def create_endpoint(
    request: Request[Any, Any, Any],
    data: JSONBody[WebhookEndpointCreate],
    caller: NamedDependency[Caller],
) -> Response[bytes]:
    target = await endpoints.check_url(_settings(request), data.url)
    box = _keybox(request)
    return await run_once(
        request, caller, lambda conn: endpoints.create(conn, box, caller.partner_id, data, target)
    )


@get(BASE)
async def list_endpoints(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    cursor: Cursor = None,
    limit: Annotated[int, QueryParameter(ge=1, le=ENDPOINTS_LIMIT_MAX)] = ENDPOINTS_LIMIT_DEFAULT,
) -> WebhookEndpointPage:
    return await in_transaction(
        request,
        lambda conn: endpoints.list_page(conn, caller.partner_id, cursor=cursor, limit=limit),
    )


@get(ONE)
async def get_endpoint(
    request: Request[Any, Any, Any], endpoint_id: FromPath[str], caller: NamedDependency[Caller]
) -> WebhookEndpoint:
    return await in_transaction(
        request, lambda conn: endpoints.get(conn, caller.partner_id, endpoint_id)
    )


@patch(
    ONE,
    status_code=200,
    responses=documented(WebhookEndpoint, f"The endpoint, changed. {REPLAY_NOTE}", 200),
)
async def update_endpoint(
    request: Request[Any, Any, Any],
    endpoint_id: FromPath[str],
    data: JSONBody[WebhookEndpointUpdate],
    caller: NamedDependency[Caller],
) -> Response[bytes]:
    _require_idempotency_key(caller)
    target = None if data.url is None else await endpoints.check_url(_settings(request), data.url)
    return await run_once(
        request,
        caller,
        lambda conn: endpoints.update(conn, caller.partner_id, endpoint_id, data, target),
        status_code=200,
    )


@delete(ONE, status_code=204)
async def delete_endpoint(
    request: Request[Any, Any, Any], endpoint_id: FromPath[str], caller: NamedDependency[Caller]
) -> Response[None]:
    _require_idempotency_key(caller)
    stored = await run_once(
        request,
        caller,
        lambda conn: endpoints.delete(conn, caller.partner_id, endpoint_id),
        status_code=204,
    )
    # The stored record keeps what was deleted; a 204 answers no body, first time or replayed.
    replayed = stored.headers.get(REPLAYED_HEADER)
    return Response(None, status_code=204, headers={REPLAYED_HEADER: replayed} if replayed else {})


@post(
    ONE + "/rotate-secret",
    status_code=200,
    response_headers=NO_STORE,
    responses=documented(
        WebhookSecretRotated,
        f"The new signing secret; the previous one signs too until it expires. {REPLAY_NOTE}",
        200,
    ),
)
async def rotate_secret(
    request: Request[Any, Any, Any], endpoint_id: FromPath[str], caller: NamedDependency[Caller]
) -> Response[bytes]:
    box = _keybox(request)
    return await run_once(
        request,
        caller,
        lambda conn: endpoints.rotate_secret(conn, box, caller.partner_id, endpoint_id),
        status_code=200,
    )


@get(ONE + "/deliveries")
async def list_deliveries(
    request: Request[Any, Any, Any],
    endpoint_id: FromPath[str],
    caller: NamedDependency[Caller],
    # `state` names Litestar's app state: the query parameter is aliased
    delivery_state: Annotated[DeliveryState | None, QueryParameter(name="state")] = None,
    cursor: Cursor = None,
    limit: Annotated[int, QueryParameter(ge=1, le=DELIVERIES_LIMIT_MAX)] = DELIVERIES_LIMIT_DEFAULT,
) -> WebhookDeliveryPage:
    return await in_transaction(
        request,
        lambda conn: deliveries.list_page(
            conn, caller.partner_id, endpoint_id, state=delivery_state, cursor=cursor, limit=limit
        ),
    )


@get(ONE + "/deliveries/{message_id:str}")
async def get_delivery(
    request: Request[Any, Any, Any],
    endpoint_id: FromPath[str],
    message_id: FromPath[str],
    caller: NamedDependency[Caller],
) -> WebhookDelivery:
    return await in_transaction(
        request, lambda conn: deliveries.get(conn, caller.partner_id, endpoint_id, message_id)
    )


@post(
    ONE + "/deliveries/{message_id:str}/retry",
    status_code=202,
    responses=documented(
        WebhookDelivery, f"The delivery, due again now (`manual`). {REPLAY_NOTE}", 202
    ),
)
async def retry_delivery(
    request: Request[Any, Any, Any],
    endpoint_id: FromPath[str],
    message_id: FromPath[str],
    caller: NamedDependency[Caller],
) -> Response[bytes]:
    return await run_once(
        request,
        caller,
        lambda conn: deliveries.retry(conn, caller.partner_id, endpoint_id, message_id),
        status_code=202,
    )


@post(
    ONE + "/replay",
    status_code=202,
    responses=documented(
        WebhookReplay, f"How many deliveries were queued again. {REPLAY_NOTE}", 202
    ),
)
async def replay_endpoint(
    request: Request[Any, Any, Any],
    endpoint_id: FromPath[str],
    data: JSONBody[WebhookReplayRequest],
    caller: NamedDependency[Caller],
) -> Response[bytes]:
    return await run_once(
        request,
        caller,
        lambda conn: deliveries.replay(conn, caller.partner_id, endpoint_id, data.since),
        status_code=202,
        grouped=False,  # up to REPLAY_EVENTS_MAX rows: a batch of its own
    )


ROUTES = [
    create_endpoint,
    list_endpoints,
    get_endpoint,
    update_endpoint,
    delete_endpoint,
    rotate_secret,
    list_deliveries,
    get_delivery,
    retry_delivery,
    replay_endpoint,
]
