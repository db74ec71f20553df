"""The gateway's own SQL: nonces, rate-limit windows, idempotency records."""

# No row back means the (key, nonce) pair was seen before.
REMEMBER_NONCE = """
INSERT INTO signature_nonces (key_id, nonce) VALUES ($1, $2)
ON CONFLICT (key_id, nonce) DO NOTHING
RETURNING true
"""

PRUNE_NONCES = """
DELETE FROM signature_nonces WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM signature_nonces
    WHERE seen_at < now() - make_interval(secs => $1)
    LIMIT $2))
"""

# One row per key and second; the upsert is atomic, so every process counts the same window.
COUNT_REQUEST = """
INSERT INTO rate_limit_windows (key_id, window_s, requests) VALUES ($1, $2, 1)
ON CONFLICT (key_id, window_s) DO UPDATE SET requests = rate_limit_windows.requests + 1
RETURNING requests
"""

PRUNE_RATE_WINDOWS = """
DELETE FROM rate_limit_windows WHERE key_id = $1 AND window_s < $2
"""

# A transaction-scoped advisory lock per (partner, key): a second call with the same key while
# the first runs fails to take it and answers 409 instead of waiting.
LOCK_IDEMPOTENCY_KEY = """
SELECT pg_try_advisory_xact_lock(hashtextextended($1::bigint::text || ':' || $2, 0))
"""

IDEMPOTENCY_RECORD = """
SELECT request_sha256, response_status, response_body
FROM idempotency_records WHERE partner_id = $1 AND idempotency_key = $2
"""

INSERT_IDEMPOTENCY_RECORD = """
INSERT INTO idempotency_records
    (partner_id, idempotency_key, request_sha256, response_status, response_body)
VALUES ($1, $2, $3, $4, $5)
"""
