"""What a partner sees of and does with its deliveries: list them, retry one, replay a period.

The delivery worker (another module) sends messages and records attempts; this module only
reads them and puts messages back to `pending` for it. Every call names the endpoint first,
so another partner's endpoint or message is `NotFound` like a malformed id.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime, timedelta

import asyncpg

from contracts.errors import DomainError, ErrorCode
from contracts.events import public_type
from contracts.webhooks import (
    ATTEMPTS_SHOWN_MAX,
    REPLAY_EVENTS_MAX,
    REPLAY_WINDOW_S,
    DeliveryState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryPage,
    WebhookReplay,
)
from infra.db import Conn
from partners.errors import NotFound
from partners.webhooks import _queries as q
from partners.webhooks import secrets
from partners.webhooks.endpoints import decode_cursor, encode_cursor, endpoint_row

MESSAGE_ID_PATTERN = re.compile(r"^msg_[a-z0-9]{16,64}$")
MESSAGE_ID_AFTER_LAST = 2**63 - 1  # the first page starts below every id
_SETTLED = ("delivered", "failed")  # no next attempt is due


class DeliverySending(DomainError):
    code = ErrorCode.WEBHOOK_DELIVERY_SENDING

    def __init__(self) -> None:
        super().__init__("the delivery is being sent right now; retry it once the attempt ends")


class EndpointDisabled(DomainError):
    code = ErrorCode.WEBHOOK_ENDPOINT_DISABLED

    def __init__(self) -> None:
        super().__init__("the endpoint is disabled and gets no deliveries: enable it first")


class ReplaySinceInvalid(DomainError):
    code = ErrorCode.WEBHOOK_REPLAY_SINCE_INVALID

    def __init__(self, why: str) -> None:
        super().__init__(why)


async def list_page(
    conn: Conn,
    partner_id: int,
    endpoint_public_id: str,
    *,
    state: DeliveryState | None,
    cursor: str | None,
    limit: int,
) -> WebhookDeliveryPage:
    """The endpoint's messages, newest first."""
    endpoint = await endpoint_row(conn, partner_id, endpoint_public_id)
    before = MESSAGE_ID_AFTER_LAST if cursor is None else decode_cursor(cursor)
    rows = await conn.fetch(q.LIST_MESSAGES, endpoint["endpoint_id"], before, state, limit + 1)
    page = rows[:limit]
    items = await _views(conn, endpoint["public_id"], page)
    more = len(rows) > limit
    return WebhookDeliveryPage(
        items=items, next_cursor=encode_cursor(page[-1]["message_id"]) if more else None
    )


async def get(
    conn: Conn, partner_id: int, endpoint_public_id: str, message_public_id: str
) -> WebhookDelivery:
    endpoint = await endpoint_row(conn, partner_id, endpoint_public_id)
    row = await _message_row(conn, endpoint["endpoint_id"], message_public_id)
    return (await _views(conn, endpoint["public_id"], [row]))[0]


async def retry(
    conn: Conn, partner_id: int, endpoint_public_id: str, message_public_id: str
) -> WebhookDelivery:
    """Put the message back to `pending`, due now, its next attempt recorded as `manual`."""
    endpoint = await endpoint_row(conn, partner_id, endpoint_public_id)
    if not endpoint["enabled"]:
        raise EndpointDisabled()
    await _message_row(conn, endpoint["endpoint_id"], message_public_id)
    row = await conn.fetchrow(q.RETRY_MESSAGE, endpoint["endpoint_id"], message_public_id)
    if row is None:  # it exists (read above) but a worker holds it under a live lease
        raise DeliverySending()
    return (await _views(conn, endpoint["public_id"], [row]))[0]


async def replay(
    conn: Conn, partner_id: int, endpoint_public_id: str, since: datetime
) -> WebhookReplay:
    """Queue again every event since `since` that the endpoint receives, at most
    REPLAY_EVENTS_MAX of them, oldest first; `next_since` says where to continue."""
    endpoint = await endpoint_row(conn, partner_id, endpoint_public_id)
    if not endpoint["enabled"]:
        raise EndpointDisabled()
    now: datetime = await conn.fetchval("SELECT now()")
    _check_since(since, now)
    events = await conn.fetch(
        q.REPLAY_EVENTS,
        endpoint["endpoint_id"],
        since,
        partner_id,
        list(endpoint["event_types"]),
        REPLAY_EVENTS_MAX + 1,
    )
    chosen = events[:REPLAY_EVENTS_MAX]
    queued = []
    if chosen:
        public_ids = [secrets.new_public_id("msg_") for _ in chosen]
        event_ids = [row["event_id"] for row in chosen]
        queued = await conn.fetch(q.QUEUE_REPLAY, endpoint["endpoint_id"], public_ids, event_ids)
    more = len(events) > REPLAY_EVENTS_MAX
    return WebhookReplay(
        endpoint_id=endpoint["public_id"],
        queued=len(queued),
        # the next call starts at the first event left out (an event at the same instant as
        # the last one queued is queued again: harmless, a message per event is kept)
        next_since=events[REPLAY_EVENTS_MAX]["occurred_at"] if more else None,
    )


def _check_since(since: datetime, now: datetime) -> None:
    assert since.tzinfo is not None, "the contract requires an offset"
    if since > now:
        raise ReplaySinceInvalid("`since` is in the future")
    if since < now - timedelta(seconds=REPLAY_WINDOW_S):
        days = REPLAY_WINDOW_S // 86_400
        raise ReplaySinceInvalid(f"a replay reaches back at most {days} days")


async def _message_row(conn: Conn, endpoint_id: int, public_id: str) -> asyncpg.Record:
    if not MESSAGE_ID_PATTERN.match(public_id):
        raise NotFound("webhook delivery")
    row = await conn.fetchrow(q.MESSAGE, endpoint_id, public_id)
    if row is None:
        raise NotFound("webhook delivery")
    return row


async def _views(
    conn: Conn, endpoint_public_id: str, rows: list[asyncpg.Record]
) -> list[WebhookDelivery]:
    """Messages with their newest attempts (one statement for the whole page)."""
    if not rows:
        return []
    attempts: dict[int, list[WebhookAttempt]] = defaultdict(list)
    message_ids = [row["message_id"] for row in rows]
    for a in await conn.fetch(q.ATTEMPTS, message_ids, ATTEMPTS_SHOWN_MAX):
        attempts[a["message_id"]].append(
            WebhookAttempt(
                attempted_at=a["attempted_at"],
                trigger=a["trigger"],
                response_status=a["response_status"],
                latency_ms=a["latency_ms"],
                error=a["error"],
            )
        )
    return [_view(endpoint_public_id, row, attempts[row["message_id"]]) for row in rows]


def _view(
    endpoint_public_id: str, row: asyncpg.Record, attempts: list[WebhookAttempt]
) -> WebhookDelivery:
    event_type = public_type(row["event_type"])
    # a message exists only for a published type (the fan-out and replay choose them)
    assert event_type is not None, row["event_type"]
    return WebhookDelivery(
        id=row["public_id"],
        endpoint_id=endpoint_public_id,
        event_id=row["event_id"],
        event_type=event_type,
        state=row["state"],
        attempts_made=row["attempts_made"],
        next_attempt_at=None if row["state"] in _SETTLED else row["next_attempt_at"],
        next_trigger=row["next_trigger"],
        created_at=row["created_at"],
        delivered_at=row["delivered_at"],
        attempts=attempts,
    )
