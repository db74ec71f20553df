"""SQL of the webhook fan-out and delivery workers (partners/webhooks/fanout.py, delivery.py)."""

from __future__ import annotations

# Drain a batch of queued events into one message per (event, endpoint), in one statement: the
# queue rows are locked (SKIP LOCKED: several processes drain side by side), deleted and turned
# into messages together, so an event is fanned out once or, if the statement fails, not at all.
# ON CONFLICT: a replay may have created an event's message already. The public id is random
# (no count of the network's events can be read from it).
FAN_OUT = """
WITH batch AS (
    SELECT event_id FROM webhooks.fanout_queue
    ORDER BY event_id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), drained AS (
    DELETE FROM webhooks.fanout_queue q USING batch b
    WHERE q.event_id = b.event_id
    RETURNING q.event_id
), created AS (
    INSERT INTO webhooks.message (public_id, endpoint_id, event_id, next_attempt_at)
    SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), t.endpoint_id, d.event_id,
           now() + make_interval(secs => $2)
    FROM drained d
    CROSS JOIN LATERAL webhooks.event_endpoints(d.event_id) AS t(endpoint_id)
    ON CONFLICT (endpoint_id, event_id) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM drained)::int AS events,
       (SELECT count(*) FROM created)::int AS messages
"""

# Claim due messages (webhooks.claim_messages, migration 0108): at most $1 in all, at most $2
# in flight per endpoint, leased for $3 seconds. lease_until is the claim's token.
CLAIM = "SELECT * FROM webhooks.claim_messages($1, $2, $3)"

RECORD_ATTEMPT = """
SELECT recorded, disabled_reason, partner_id, endpoint_public_id
FROM webhooks.record_attempt($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
"""

# What waits: messages not yet delivered or failed, and events not yet fanned out.
QUEUE_DEPTH = """
SELECT (SELECT count(*) FROM webhooks.message WHERE state IN ('pending', 'sending'))::bigint
           AS messages,
       (SELECT count(*) FROM webhooks.fanout_queue)::bigint AS fanout
"""
