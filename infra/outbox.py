"""Record an event in the outbox, inside the caller's transaction."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from infra.db import Conn

PAYLOAD_BYTES_MAX = 16_384

INSERT_EVENT = """
INSERT INTO event_outbox (event_type, partner_id, shopper_id, payload)
VALUES ($1, $2, $3, $4::jsonb) RETURNING event_id
"""


def payload_text(event_type: str, payload: Mapping[str, Any]) -> str:
    """An event's payload as stored (`record`'s encoding), for a statement that inserts the
    event itself (partners' purchase write, migration 0085)."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str)
    assert len(body) <= PAYLOAD_BYTES_MAX, (event_type, len(body))
    return body


async def record(
    conn: Conn,
    event_type: str,
    *,
    payload: Mapping[str, Any],
    partner_id: int | None = None,
    shopper_id: int | None = None,
) -> int:
    """Append one event; it commits or rolls back with the caller's transaction."""
    assert conn.is_in_transaction(), "events are recorded inside the change's transaction"
    body = payload_text(event_type, payload)
    event_id: int = await conn.fetchval(INSERT_EVENT, event_type, partner_id, shopper_id, body)
    return event_id
