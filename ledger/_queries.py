"""Every SQL statement of the ledger's Python side, in one place.

Operations are one call each to a PL/pgSQL function of 0002_ledger.sql: one round trip, and
asyncpg's statement cache keeps each of these prepared per connection.
"""

from __future__ import annotations

EARN = "SELECT ledger.earn($1, $2, $3, $4, $5, $6, $7, $8::jsonb)"
BURN = "SELECT ledger.burn($1, $2, $3, $4, $5, $6::jsonb)"
GOODWILL_DEBIT = "SELECT ledger.goodwill_debit($1, $2, $3, $4, $5, $6::jsonb)"
HOLD = "SELECT ledger.hold($1, $2, $3, $4, $5, $6::jsonb)"
CAPTURE = "SELECT ledger.capture($1, $2, $3, $4, $5::jsonb)"
VOID = "SELECT ledger.void($1, $2, $3::jsonb)"
REFUND_EARN = "SELECT ledger.refund_earn($1, $2, $3, $4::jsonb)"
REFUND_BURN = "SELECT ledger.refund_burn($1, $2, $3, $4, $5::jsonb)"
TRANSFER_ALL = "SELECT ledger.transfer_all($1, $2, $3, $4::jsonb)"
SETTLEMENT_PAYMENT = "SELECT ledger.settlement_payment($1, $2, $3, $4::jsonb)"
MEMBERSHIP_CHARGE = "SELECT ledger.membership_charge($1, $2, $3, $4, $5, $6, $7::jsonb)"

RELEASE_EXPIRED_HOLDS = "SELECT ledger.release_expired_holds($1, $2)"
EXPIRE_LOTS = "SELECT ledger.expire_lots($1, $2)"
FOLD_DELTAS = "SELECT ledger.fold_deltas($1)"

BALANCE = "SELECT ledger.balance($1, $2)"

HISTORY = """
SELECT p.posting_id, p.entry_id, e.kind, p.asset, p.amount, p.created_at,
       e.corrects_entry_id, e.metadata::text AS metadata
FROM ledger.posting p
JOIN ledger.entry e ON e.entry_id = p.entry_id
WHERE p.account_id = (SELECT account_id FROM ledger.account WHERE name = $1)
  AND p.posting_id < $2
ORDER BY p.posting_id DESC
LIMIT $3
"""

WALLET = """
SELECT available, held, debt_points FROM ledger.wallet WHERE shopper_id = $1
"""

EXPIRING_LOTS = """
SELECT expires_at, remaining - reserved AS points, partner_id
FROM ledger.lot
WHERE shopper_id = $1 AND remaining > reserved AND expires_at <= $2
ORDER BY expires_at, lot_id
LIMIT $3
"""

# Sealing. One sealer at a time (the chain is a sequence); the queue only shows committed
# entries, so a block never includes an entry that could still roll back.
SEAL_LOCK = "SELECT pg_advisory_xact_lock(hashtext('ledger.seal_blocks'))"
SEAL_TAKE = """
DELETE FROM ledger.seal_queue
WHERE entry_id IN (SELECT entry_id FROM ledger.seal_queue
                   ORDER BY entry_id LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING entry_id
"""
LAST_BLOCK = "SELECT block_id, hash FROM ledger.block ORDER BY block_id DESC LIMIT 1"
INSERT_BLOCK = """
INSERT INTO ledger.block (block_id, prev_hash, hash, entry_count) VALUES ($1, $2, $3, $4)
"""
INSERT_BLOCK_ENTRIES = """
INSERT INTO ledger.block_entry (entry_id, block_id, digest)
SELECT unnest($1::bigint[]), $2, unnest($3::bytea[])
"""

# The canonical content of entries for hashing: jsonb renders deterministically, and the
# timestamp goes as integer microseconds so the session's TimeZone cannot change the bytes.
ENTRIES_FOR_HASH = """
SELECT e.entry_id, e.kind, e.idempotency_key, e.shopper_id, e.partner_id,
       e.corrects_entry_id, e.args::text AS args, e.metadata::text AS metadata,
       (extract(epoch FROM e.created_at) * 1000000)::bigint AS created_us,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(p.posting_id, p.account_id, p.asset,
                                                    p.amount) ORDER BY p.posting_id),
                        '[]'::jsonb)::text
        FROM ledger.posting p WHERE p.entry_id = e.entry_id) AS postings
FROM ledger.entry e
WHERE e.entry_id = ANY($1::bigint[])
ORDER BY e.entry_id
"""
