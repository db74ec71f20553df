"""A partner's webhook endpoints: register, read, change, delete, rotate the signing secret.

URLs are checked for SSRF by the caller (`check_url`, which resolves names: kept outside the
transaction so a slow DNS answer holds no pooled connection) and handed in as a checked
`ssrf.Target`. Another partner's endpoint, like a malformed id, is `NotFound`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import asyncpg

from contracts import cursors
from contracts.errors import DomainError, ErrorCode
from contracts.events import EVENT_TYPES
from contracts.webhooks import (
    ENDPOINTS_PER_PARTNER_MAX,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointPage,
    WebhookEndpointUpdate,
    WebhookSecretRotated,
)
from infra.db import Conn
from infra.settings import Settings
from partners.errors import CursorInvalid, NotFound
from partners.keybox import KeyBox
from partners.webhooks import _queries as q
from partners.webhooks import secrets, ssrf

ENDPOINT_ID_PATTERN = re.compile(r"^ep_[a-z0-9]{16,64}$")
_CURSOR_VERSION = "we1:"


class EventTypeUnknown(DomainError):
    code = ErrorCode.WEBHOOK_EVENT_TYPE_UNKNOWN

    def __init__(self, unknown: list[str]) -> None:
        super().__init__(
            f"unknown event types {', '.join(sorted(unknown))}; known: {', '.join(EVENT_TYPES)}"
        )


class EndpointLimitReached(DomainError):
    code = ErrorCode.WEBHOOK_ENDPOINT_LIMIT_REACHED

    def __init__(self, endpoints_max: int) -> None:
        self.endpoints_max = endpoints_max
        super().__init__(
            f"a partner has at most {endpoints_max} webhook endpoints: delete one first"
        )

    def details(self) -> dict[str, Any]:
        return {"endpoints_max": self.endpoints_max}


async def check_url(settings: Settings, url: str) -> ssrf.Target:
    """The URL checked as registration requires: https and a public address, unless the
    demo/test setting allows 127.0.0.1 (and then plain http too)."""
    allow_loopback = settings.webhooks_allow_loopback
    return await ssrf.check(url, allow_loopback=allow_loopback, require_https=not allow_loopback)


def event_types(names: list[str]) -> list[str]:
    """The subscribed types, each once, in catalogue order; unknown names are refused."""
    unknown = [name for name in set(names) if name not in EVENT_TYPES]
    if unknown:
        raise EventTypeUnknown(unknown)
    wanted = set(names)
    return [name for name in EVENT_TYPES if name in wanted]


async def create(
    conn: Conn, box: KeyBox, partner_id: int, data: WebhookEndpointCreate, target: ssrf.Target
) -> WebhookEndpointCreated:
    types = event_types(data.events)
    await conn.execute(q.LOCK_PARTNER_ENDPOINTS, partner_id)
    if await conn.fetchval(q.COUNT_ENDPOINTS, partner_id) >= ENDPOINTS_PER_PARTNER_MAX:
        raise EndpointLimitReached(ENDPOINTS_PER_PARTNER_MAX)
    row = await conn.fetchrow(
        q.INSERT_ENDPOINT,
        secrets.new_public_id("ep_"),
        partner_id,
        target.url,
        data.description,
        types,
    )
    assert row is not None
    secret, _ = await _new_secret(conn, box, row["endpoint_id"])
    endpoint = endpoint_view(row)
    return WebhookEndpointCreated(**_fields(endpoint), secret=secret)


async def get(conn: Conn, partner_id: int, public_id: str) -> WebhookEndpoint:
    return endpoint_view(await endpoint_row(conn, partner_id, public_id))


async def list_page(
    conn: Conn, partner_id: int, *, cursor: str | None, limit: int
) -> WebhookEndpointPage:
    after = 0 if cursor is None else decode_cursor(cursor)
    rows = await conn.fetch(q.LIST_ENDPOINTS, partner_id, after, limit + 1)
    page = rows[:limit]
    more = len(rows) > limit
    return WebhookEndpointPage(
        items=[endpoint_view(row) for row in page],
        next_cursor=encode_cursor(page[-1]["endpoint_id"]) if more else None,
    )


async def update(
    conn: Conn,
    partner_id: int,
    public_id: str,
    data: WebhookEndpointUpdate,
    target: ssrf.Target | None,
) -> WebhookEndpoint:
    assert (target is None) == (data.url is None), "a new URL is checked by the caller"
    types = None if data.events is None else event_types(data.events)
    row = await endpoint_row(conn, partner_id, public_id, for_update=True)
    updated = await conn.fetchrow(
        q.UPDATE_ENDPOINT,
        row["endpoint_id"],
        None if target is None else target.url,
        types,
        data.description,
        data.enabled,
    )
    assert updated is not None
    return endpoint_view(updated)


async def delete(conn: Conn, partner_id: int, public_id: str) -> WebhookEndpoint:
    """Delete the endpoint with its secrets, messages and attempts; answers what it was."""
    row = await endpoint_row(conn, partner_id, public_id, for_update=True)
    await conn.execute(q.DELETE_ENDPOINT, row["endpoint_id"])
    return endpoint_view(row)


async def rotate_secret(
    conn: Conn, box: KeyBox, partner_id: int, public_id: str
) -> WebhookSecretRotated:
    """A new current secret; the previous one signs for ROTATION_OVERLAP_S more, and one
    from an earlier rotation still in its overlap stops signing now (at most two sign)."""
    row = await endpoint_row(conn, partner_id, public_id, for_update=True)
    expired = await conn.fetch(q.EXPIRE_SECRETS, row["endpoint_id"], secrets.ROTATION_OVERLAP_S)
    overlapping = [r["expires_at"] for r in expired if r["overlapping"]]
    assert len(overlapping) <= 1, "one current secret per endpoint"
    secret, created_at = await _new_secret(conn, box, row["endpoint_id"])
    return WebhookSecretRotated(
        endpoint_id=row["public_id"],
        secret=secret,
        created_at=created_at,
        previous_expires_at=overlapping[0] if overlapping else None,
    )


async def endpoint_row(
    conn: Conn, partner_id: int, public_id: str, *, for_update: bool = False
) -> asyncpg.Record:
    """The partner's endpoint row; NotFound for another partner's id or a malformed one."""
    if not ENDPOINT_ID_PATTERN.match(public_id):
        raise NotFound("webhook endpoint")
    query = q.ENDPOINT_FOR_UPDATE if for_update else q.ENDPOINT
    row = await conn.fetchrow(query, public_id, partner_id)
    if row is None:
        raise NotFound("webhook endpoint")
    return row


def endpoint_view(row: asyncpg.Record) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row["public_id"],
        url=row["url"],
        events=list(row["event_types"]),
        description=row["description"],
        enabled=row["enabled"],
        disabled_reason=row["disabled_reason"],
        failing_since=row["failing_since"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def _new_secret(conn: Conn, box: KeyBox, endpoint_id: int) -> tuple[str, datetime]:
    """A new current secret, sealed under its own id; answers it and when it was made."""
    secret_id = secrets.new_public_id(secrets.SECRET_ID_PREFIX)
    secret = secrets.new_secret()
    sealed = secrets.seal(box, secret_id, secret)
    created_at: datetime = await conn.fetchval(q.INSERT_SECRET, secret_id, endpoint_id, sealed)
    return secret, created_at


def _fields(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {name: getattr(endpoint, name) for name in endpoint.__struct_fields__}


def encode_cursor(row_id: int) -> str:
    return cursors.encode_id(_CURSOR_VERSION, row_id)


def decode_cursor(cursor: str) -> int:
    row_id = cursors.decode_id(_CURSOR_VERSION, cursor)
    if row_id is None:
        raise CursorInvalid()
    return row_id
