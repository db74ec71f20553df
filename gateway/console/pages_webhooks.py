"""A partner's webhooks in the console: its endpoints and their failed deliveries, and Retry….

Reads go through `partners.webhooks.endpoints` and `.deliveries` with the partner id from the
path, as /v1/operator/partners/{id}/webhook-endpoints does; a retry has a confirmation page,
then calls `deliveries.retry` (the retry route's function) and appends a `webhook.retry` audit
entry in the same transaction. Every role reads; only admin and support see Retry… (a forged
POST by another role is refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template

from contracts.partners import Partner
from contracts.webhooks import ENDPOINTS_PER_PARTNER_MAX, WebhookDelivery, WebhookEndpoint
from gateway.console import audit
from gateway.console.access import Area
from gateway.console.web import page, require
from gateway.routes._common import PathId, in_transaction
from infra.db import Conn
from partners import operations
from partners.errors import NotFound
from partners.webhooks import deliveries, endpoints
from partners.webhooks.worker import FAILING_DISABLE_AFTER_S

FAILED_SHOWN_MAX = 20  # failed deliveries shown per endpoint, newest first
SECONDS_PER_DAY = 86_400
ID_CHARS_MAX = 80  # longer than any ep_/msg_ id: a query value is cut before it is looked up
BASE = "/console/partners/{partner_id:int}/webhooks"
RETRY = BASE + "/{endpoint_id:str}/deliveries/{message_id:str}/retry"
# contracts.webhooks.DisabledReason, said for people
DISABLED_WHY = {
    "partner": "by the partner",
    "failing": f"failing for {FAILING_DISABLE_AFTER_S // SECONDS_PER_DAY} days",
    "gone": "the endpoint answered 410 Gone",
}


@dataclass(frozen=True)
class EndpointFailures:
    endpoint: WebhookEndpoint
    failed: list[WebhookDelivery]  # newest first, at most FAILED_SHOWN_MAX
    more: bool  # the endpoint has more failed deliveries than shown


async def _failures(conn: Conn, partner_id: int, endpoint: WebhookEndpoint) -> EndpointFailures:
    found = await deliveries.list_page(
        conn, partner_id, endpoint.id, state="failed", cursor=None, limit=FAILED_SHOWN_MAX
    )
    return EndpointFailures(endpoint, found.items, more=found.next_cursor is not None)


async def _retried(
    conn: Conn, partner_id: int, endpoint_id: str | None, message_id: str | None
) -> str | None:
    """The notice after a retry: named only for a delivery of this partner queued by hand
    (the query is not echoed blindly)."""
    if endpoint_id is None or message_id is None:
        return None
    try:
        found = await deliveries.get(
            conn, partner_id, endpoint_id[:ID_CHARS_MAX], message_id[:ID_CHARS_MAX]
        )
    except NotFound:
        return None
    return f"Delivery {found.id} is queued again." if found.next_trigger == "manual" else None


@get(BASE)
async def webhooks(
    request: Request[Any, Any, Any],
    partner_id: PathId,
    endpoint: FromQuery[str | None] = None,
    retried: FromQuery[str | None] = None,
) -> Template:
    require(request, Area.WEBHOOKS)

    async def read(conn: Conn) -> tuple[Partner, list[EndpointFailures], bool, str | None]:
        found = await operations.get_partner(conn, partner_id)
        listed = await endpoints.list_page(
            conn, partner_id, cursor=None, limit=ENDPOINTS_PER_PARTNER_MAX
        )
        items = [await _failures(conn, partner_id, e) for e in listed.items]
        done = await _retried(conn, partner_id, endpoint, retried)
        return found, items, listed.next_cursor is not None, done

    found, items, more_endpoints, done = await in_transaction(request, read)
    return page(
        request,
        "webhooks.html",
        title=f"Webhooks of {found.name}",
        active="Partners",
        p=found,
        items=items,
        more_endpoints=more_endpoints,
        shown_max=FAILED_SHOWN_MAX,
        disabled_why=DISABLED_WHY,
        done=done,
    )


async def _delivery_of(
    conn: Conn, partner_id: int, endpoint_id: str, message_id: str
) -> tuple[Partner, WebhookEndpoint, WebhookDelivery]:
    """The partner, its endpoint and one of its deliveries; another partner's ids are 404."""
    found = await operations.get_partner(conn, partner_id)
    endpoint = await endpoints.get(conn, partner_id, endpoint_id)
    return found, endpoint, await deliveries.get(conn, partner_id, endpoint_id, message_id)


def _delivery_state(delivery: WebhookDelivery) -> dict[str, Any]:
    return {
        "endpoint_id": delivery.endpoint_id,
        "message_id": delivery.id,
        "state": delivery.state,
        "attempts_made": delivery.attempts_made,
        "next_attempt_at": delivery.next_attempt_at,
        "next_trigger": delivery.next_trigger,
    }


@get(RETRY)
async def retry_confirm(
    request: Request[Any, Any, Any],
    partner_id: PathId,
    endpoint_id: FromPath[str],
    message_id: FromPath[str],
) -> Template:
    """What the retry would do; nothing changes until it is confirmed."""
    require(request, Area.WEBHOOK_RETRY)
    found, endpoint, delivery = await in_transaction(
        request, lambda conn: _delivery_of(conn, partner_id, endpoint_id, message_id)
    )
    return page(
        request,
        "confirm_webhook_retry.html",
        title=f"Retry delivery {delivery.id}",
        active="Partners",
        p=found,
        endpoint=endpoint,
        delivery=delivery,
    )


@post(RETRY, status_code=303)
async def retry(
    request: Request[Any, Any, Any],
    partner_id: PathId,
    endpoint_id: FromPath[str],
    message_id: FromPath[str],
) -> Redirect:
    user = require(request, Area.WEBHOOK_RETRY)

    async def work(conn: Conn) -> None:
        _, _, before = await _delivery_of(conn, partner_id, endpoint_id, message_id)
        after = await deliveries.retry(conn, partner_id, endpoint_id, message_id)
        await audit.record(
            conn,
            user,
            "webhook.retry",
            f"partner:{partner_id}",
            before=_delivery_state(before),
            after=_delivery_state(after),
        )

    await in_transaction(request, work)
    return Redirect(
        f"/console/partners/{partner_id}/webhooks?endpoint={endpoint_id}&retried={message_id}",
        status_code=303,
    )


ROUTES = [webhooks, retry_confirm, retry]
