"""SQL of the webhook endpoint API (endpoints.py, deliveries.py); schema in migration 0100."""

from __future__ import annotations

ENDPOINT_COLUMNS = """
e.endpoint_id, e.public_id, e.partner_id, e.url, e.description, e.event_types, e.enabled,
e.disabled_reason, e.failing_since, e.created_at, e.updated_at
"""

# Serializes a partner's endpoint creations so the per-partner limit holds under concurrency
# (an advisory lock: a row lock on `partners` would queue behind every purchase's KEY SHARE).
LOCK_PARTNER_ENDPOINTS = """
SELECT pg_advisory_xact_lock(hashtextextended('webhooks.endpoint:' || $1::bigint, 0))
"""

COUNT_ENDPOINTS = "SELECT count(*) FROM webhooks.endpoint WHERE partner_id = $1"

INSERT_ENDPOINT = f"""
INSERT INTO webhooks.endpoint AS e (public_id, partner_id, url, description, event_types)
VALUES ($1, $2, $3, $4, $5)
RETURNING {ENDPOINT_COLUMNS}
"""

INSERT_SECRET = """
INSERT INTO webhooks.endpoint_secret (secret_id, endpoint_id, secret_sealed)
VALUES ($1, $2, $3)
RETURNING created_at
"""  # noqa: S105 (a statement, not a secret)

# The partner's endpoint by public id, locked when it is to change (another partner's: no row).
ENDPOINT = f"""
SELECT {ENDPOINT_COLUMNS} FROM webhooks.endpoint e WHERE e.public_id = $1 AND e.partner_id = $2
"""
ENDPOINT_FOR_UPDATE = ENDPOINT + " FOR NO KEY UPDATE"

LIST_ENDPOINTS = f"""
SELECT {ENDPOINT_COLUMNS} FROM webhooks.endpoint e
WHERE e.partner_id = $1 AND e.endpoint_id > $2
ORDER BY e.endpoint_id
LIMIT $3
"""

# NULL arguments keep a column; re-enabling clears the failure run and the reason, disabling
# says the partner did it. `enabled = true` on an endpoint already enabled changes nothing, so
# it cannot restart the failing clock that disables an endpoint failing for days.
UPDATE_ENDPOINT = f"""
UPDATE webhooks.endpoint AS e SET
    url = coalesce($2, e.url),
    event_types = coalesce($3, e.event_types),
    description = coalesce($4, e.description),
    enabled = coalesce($5, e.enabled),
    disabled_reason = CASE
        WHEN $5 IS NULL OR $5 = e.enabled THEN e.disabled_reason
        WHEN $5 THEN NULL
        ELSE 'partner' END,
    failing_since = CASE WHEN $5 AND NOT e.enabled THEN NULL ELSE e.failing_since END,
    updated_at = now()
WHERE e.endpoint_id = $1
RETURNING {ENDPOINT_COLUMNS}
"""

DELETE_ENDPOINT = "DELETE FROM webhooks.endpoint WHERE endpoint_id = $1"

# A rotation: an older secret still in its overlap stops signing now; the current one signs
# for the overlap more. The new current secret is inserted after (one current per endpoint).
EXPIRE_SECRETS = """
UPDATE webhooks.endpoint_secret
SET expires_at = CASE
    WHEN expires_at IS NULL THEN now() + make_interval(secs => $2)
    ELSE now() END
WHERE endpoint_id = $1 AND (expires_at IS NULL OR expires_at > now())
RETURNING expires_at, (expires_at > now()) AS overlapping
"""

MESSAGE_COLUMNS = """
m.message_id, m.public_id, m.event_id, o.event_type, m.state, m.attempts_made,
m.next_attempt_at, m.next_trigger, m.created_at, m.delivered_at
"""

LIST_MESSAGES = f"""
SELECT {MESSAGE_COLUMNS}
FROM webhooks.message m JOIN event_outbox o ON o.event_id = m.event_id
WHERE m.endpoint_id = $1 AND m.message_id < $2 AND ($3::text IS NULL OR m.state = $3)
ORDER BY m.message_id DESC
LIMIT $4
"""

MESSAGE = f"""
SELECT {MESSAGE_COLUMNS}
FROM webhooks.message m JOIN event_outbox o ON o.event_id = m.event_id
WHERE m.endpoint_id = $1 AND m.public_id = $2
"""

# The newest attempts of each message, newest first.
ATTEMPTS = """
SELECT a.message_id, a.attempted_at, a.trigger, a.response_status, a.latency_ms, a.error
FROM unnest($1::bigint[]) AS wanted(message_id)
CROSS JOIN LATERAL (
    SELECT * FROM webhooks.attempt a
    WHERE a.message_id = wanted.message_id
    ORDER BY a.attempt_id DESC
    LIMIT $2
) a
ORDER BY a.message_id, a.attempt_id DESC
"""

# A manual retry, unless a worker holds the message under a live lease (it is being sent).
RETRY_MESSAGE = f"""
WITH retried AS (
    UPDATE webhooks.message AS m
    SET state = 'pending', next_attempt_at = now(), next_trigger = 'manual', lease_until = NULL
    WHERE m.endpoint_id = $1 AND m.public_id = $2
      AND NOT (m.state = 'sending' AND m.lease_until > now())
    RETURNING m.*
)
SELECT {MESSAGE_COLUMNS} FROM retried m JOIN event_outbox o ON o.event_id = m.event_id
"""

# The events a replay queues for one endpoint: since a time, in commit-independent order
# (occurred_at, event_id), that the one matching rule (`webhooks.event_endpoints`, migration
# 0101: recipients, public type, enabled) sends to this endpoint. The partner and type tests
# only narrow the scan before the rule is asked.
REPLAY_EVENTS = """
SELECT o.event_id, o.occurred_at
FROM event_outbox o
WHERE o.occurred_at >= $2 AND o.occurred_at <= now()
  AND (o.partner_id = $3 OR o.partner_id IS NULL)
  AND webhooks.public_type(o.event_type) = ANY($4::text[])
  AND $1 IN (SELECT webhooks.event_endpoints(o.event_id))
ORDER BY o.occurred_at, o.event_id
LIMIT $5
"""

# One message per (endpoint, event): a replay puts an existing one back to pending, leaving
# alone one a worker is sending right now (it is being delivered again anyway).
QUEUE_REPLAY = """
INSERT INTO webhooks.message AS m (public_id, endpoint_id, event_id, next_trigger)
SELECT public_id, $1, event_id, 'replay'
FROM unnest($2::text[], $3::bigint[]) AS wanted(public_id, event_id)
ON CONFLICT (endpoint_id, event_id) DO UPDATE
SET state = 'pending', next_attempt_at = now(), next_trigger = 'replay', lease_until = NULL
WHERE NOT (m.state = 'sending' AND m.lease_until > now())
RETURNING m.message_id
"""
