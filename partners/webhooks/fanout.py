"""The fan-out worker: queued outbox events become one message per (event, endpoint).

The outbox trigger (migration 0100) queues an event in its own transaction whenever some
enabled endpoint might want it; `webhooks.event_endpoints` (0101) names the endpoints that do
(recipient partners, subscribed type). Draining, deleting and inserting are one statement.
"""

from __future__ import annotations

import asyncpg

from partners.webhooks import _delivery_queries as q

FANOUT_BATCH_MAX = 500


async def fan_out(
    pool: asyncpg.Pool, *, first_delay_s: float = 0.0, batch_max: int = FANOUT_BATCH_MAX
) -> int:
    """Fan out up to `batch_max` queued events; the number of events drained."""
    assert batch_max > 0
    async with pool.acquire() as conn:
        row = await conn.fetchrow(q.FAN_OUT, batch_max, first_delay_s)
    assert row is not None
    events: int = row["events"]
    return events
