"""The gateway's own SQL: admission (nonce, rate limit, idempotency claim), records, pruning.

Every text here is a constant, so asyncpg prepares each statement once per connection.
"""

# One round trip admits a signed call (infra/migrations/0080_gateway_admission.sql):
# ($1 key_id, $2 nonce, $3 limit_per_s, $4 window_s, $5 process, $6 local_requests,
#  $7 partner_id, $8 idempotency_key).
ADMIT = """
SELECT nonce_fresh, requests, locked, request_sha256, response_status, response_body
FROM gateway_admit($1, $2, $3, $4, $5, $6, $7, $8)
"""

# Many calls of a group (gateway/group_commit.py) admitted in one round trip, set-based
# (infra/migrations/0095_gateway_admit_many.sql): ADMIT's arguments as arrays, one element per
# call; ADMIT's columns, a row per call, in array order.
ADMIT_MANY = """
SELECT nonce_fresh, requests, locked, request_sha256, response_status, response_body
FROM gateway_admit_many($1::text[], $2::text[], $3::integer[], $4::bigint[], $5::bigint[],
                        $6::integer[], $7::bigint[], $8::text[])
ORDER BY n
"""

# The wallets of a group's cards ($1) and of its refunds' originals ($2 partner ids, $3 their
# partner_refs), locked in one global order (shopper id) before its steps run
# (gateway/idempotency.py `_lock_wallets`). A card or ref unknown, or a wallet not yet made,
# locks nothing: the effect then refuses it or makes the wallet, as without this statement.
LOCK_WALLETS = """
SELECT 1 FROM ledger.wallet w
WHERE w.shopper_id IN (
    SELECT c.shopper_id FROM shopper_cards c WHERE c.card_number = ANY($1::text[])
    UNION
    SELECT t.shopper_id
    FROM unnest($2::bigint[], $3::text[]) AS r (partner_id, partner_ref)
    JOIN partner_transactions t ON t.partner_id = r.partner_id AND t.partner_ref = r.partner_ref
)
ORDER BY w.shopper_id
FOR UPDATE OF w
"""

# The effect runs after this savepoint: a failing effect is rolled back to it and the
# admission (nonce, counted request) still commits, so replay protection does not depend on
# the outcome. One round trip with no server work; no RELEASE (COMMIT releases it).
SAVEPOINT_EFFECT = "SAVEPOINT gateway_effect"
ROLLBACK_TO_EFFECT = "ROLLBACK TO SAVEPOINT gateway_effect"

# Idempotency records, one or a group's, in one statement: the columns as arrays.
INSERT_IDEMPOTENCY_RECORDS = """
INSERT INTO idempotency_records
    (partner_id, idempotency_key, request_sha256, response_status, response_body)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::smallint[], $5::bytea[])
"""

# Housekeeping, off the request path (a background task, at most once per interval per
# process); SKIP LOCKED so that processes pruning at the same time never wait on each other.
PRUNE_NONCES = """
DELETE FROM signature_nonces WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM signature_nonces
    WHERE seen_at < now() - make_interval(secs => $1)
    LIMIT $2 FOR UPDATE SKIP LOCKED))
"""

# Rows of backends that exited (each backend clears its own past windows as it goes).
PRUNE_RATE_SHARDS = """
DELETE FROM rate_limit_shards WHERE ctid = ANY (ARRAY(
    SELECT ctid FROM rate_limit_shards
    WHERE window_s < $1
    LIMIT $2 FOR UPDATE SKIP LOCKED))
"""
