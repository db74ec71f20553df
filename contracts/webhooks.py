"""Webhook endpoint wire contracts (issue 16): endpoints, their signing secrets, deliveries.

A partner registers HTTPS endpoints through signed calls; each endpoint receives the event
types it lists (names from contracts.events.EVENT_TYPES), signed with Standard Webhooks
secrets (`whsec_` + base64) that are shown only when created or rotated.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

ENDPOINTS_PER_PARTNER_MAX = 20
ENDPOINTS_LIMIT_DEFAULT = 50
ENDPOINTS_LIMIT_MAX = 200
DELIVERIES_LIMIT_DEFAULT = 50
DELIVERIES_LIMIT_MAX = 200
ATTEMPTS_SHOWN_MAX = 50  # the newest attempts of a delivery a listing shows
EVENT_TYPES_PER_ENDPOINT_MAX = 64
REPLAY_EVENTS_MAX = 10_000  # one replay call queues at most this many events
REPLAY_WINDOW_S = 30 * 24 * 3600  # a replay reaches back at most 30 days
URL_CHARS_MAX = 2048
DESCRIPTION_CHARS_MAX = 500

Url = Annotated[str, msgspec.Meta(min_length=8, max_length=URL_CHARS_MAX)]
Description = Annotated[str, msgspec.Meta(max_length=DESCRIPTION_CHARS_MAX)]
# Any short name is accepted here; names outside the catalogue are refused with their own code
# (webhook_event_type_unknown), so a client can tell a typo from a malformed body.
EventTypeName = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
EventTypes = Annotated[
    list[EventTypeName], msgspec.Meta(min_length=1, max_length=EVENT_TYPES_PER_ENDPOINT_MAX)
]
DeliveryState = Literal["pending", "sending", "delivered", "failed"]
Trigger = Literal["scheduled", "manual", "replay"]
DisabledReason = Literal["partner", "failing", "gone"]
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]


class _Request(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    pass


class _Response(msgspec.Struct, kw_only=True):
    pass


class WebhookEndpointCreate(_Request):
    url: Url
    events: EventTypes
    description: Description = ""


class WebhookEndpointUpdate(_Request):
    """Only the members given change. `enabled: true` on a disabled endpoint clears why it was
    disabled and its failure run; `enabled: false` disables it (reason `partner`)."""

    url: Url | None = None
    events: EventTypes | None = None
    description: Description | None = None
    enabled: bool | None = None


class WebhookEndpoint(_Response):
    id: str  # ep_...
    url: str
    events: list[str]
    description: str
    enabled: bool
    disabled_reason: DisabledReason | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime


class WebhookEndpointCreated(WebhookEndpoint):
    """The endpoint with its signing secret: the only answer, with rotate-secret's, showing it."""

    secret: str  # whsec_...


class WebhookEndpointPage(_Response):
    items: list[WebhookEndpoint]
    next_cursor: str | None = None


class WebhookSecretRotated(_Response):
    endpoint_id: str
    secret: str  # whsec_..., the new current secret
    created_at: datetime
    previous_expires_at: datetime | None  # until then the previous secret signs too


class WebhookAttempt(_Response):
    attempted_at: datetime
    trigger: Trigger
    response_status: int | None  # None: no HTTP answer (timeout, refused connection, SSRF)
    latency_ms: int
    error: str | None


class WebhookDelivery(_Response):
    id: str  # msg_...
    endpoint_id: str
    event_id: int  # the outbox event; the same event reaches each endpoint under this id
    event_type: str
    state: DeliveryState
    attempts_made: int
    next_attempt_at: datetime | None  # None once delivered or failed
    next_trigger: Trigger
    created_at: datetime
    delivered_at: datetime | None
    attempts: list[WebhookAttempt]  # newest first, at most ATTEMPTS_SHOWN_MAX


class WebhookDeliveryPage(_Response):
    items: list[WebhookDelivery]
    next_cursor: str | None = None


class WebhookReplayRequest(_Request):
    since: AwareDatetime  # RFC 3339 with an offset; at most 30 days ago, not in the future


class WebhookReplay(_Response):
    endpoint_id: str
    queued: int  # messages put back to pending or created
    # set when the call stopped at REPLAY_EVENTS_MAX: replay again from here for the rest
    next_since: datetime | None = None
