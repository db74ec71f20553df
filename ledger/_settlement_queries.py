"""SQL of settlement and reconciliation (schema in infra/migrations/0020_settlement.sql)."""

from __future__ import annotations

# ---- closing a period ------------------------------------------------------------------------

# One constant for every process: closes of periods serialize on it.
CLOSE_LOCK = "SELECT pg_advisory_xact_lock(x'0C0A5E77'::bigint)"

NETWORK = "SELECT currency::text AS currency, time_zone FROM network_settings"
# The cycle in force: its own time zone, else the network's (the default).
CYCLE = """
SELECT c.cadence, coalesce(c.time_zone, n.time_zone) AS time_zone, c.updated_at, c.updated_by
FROM settlement.cycle c CROSS JOIN network_settings n
"""
SET_CYCLE = """
UPDATE settlement.cycle SET cadence = $1, time_zone = $2, updated_by = $3, updated_at = now()
"""
INSERT_CYCLE_CHANGE = """
INSERT INTO settlement.cycle_change (cadence, time_zone, previous_cadence, previous_time_zone,
                                     effective_from, changed_by)
VALUES ($1, $2, $3, $4, $5, $6)
"""

_PERIOD_COLUMNS = (
    "period_id, period_start, period_end, currency, minor_unit_micros, closed_by, closed_at"
)

PERIOD_BY_END = f"SELECT {_PERIOD_COLUMNS} FROM settlement.period WHERE period_end = $1"
PERIOD_BY_ID = f"SELECT {_PERIOD_COLUMNS} FROM settlement.period WHERE period_id = $1"
LAST_PERIOD = f"SELECT {_PERIOD_COLUMNS} FROM settlement.period ORDER BY period_end DESC LIMIT 1"
LAST_PERIOD_END = "SELECT max(period_end) FROM settlement.period"

# The snapshot is taken by this statement, after the lock and before the stamping statement:
# anything complete before it is visible to the stamping statement.
INSERT_PERIOD = """
INSERT INTO settlement.period (period_start, period_end, currency, minor_unit_micros,
                               close_snapshot, closed_by)
VALUES ($1, $2, $3, $4, pg_current_snapshot(), $5)
RETURNING period_id
"""

# Stamp every committed, unstamped entry created before period_end. Narrowed (see the
# migration): entries older than the previous close's xmin and created before the previous
# period_end were visible to that close, which stamped them.
STAMP_ENTRIES = """
WITH prev AS (
    SELECT pg_snapshot_xmin(close_snapshot) AS xmin, period_end
    FROM settlement.period WHERE period_id = $3
), stamped AS (
    INSERT INTO settlement.entry_period (entry_id, period_id)
    SELECT e.entry_id, $1
    FROM ledger.entry e
    WHERE e.created_at < $2
      AND (NOT EXISTS (SELECT 1 FROM prev)
           OR e.txid >= (SELECT xmin FROM prev)
           OR e.created_at >= (SELECT period_end FROM prev))
    -- ON CONFLICT, not an anti-join: an anti-join planned on the statistics of an empty
    -- entry_period (e.g. after ANALYZE on a fresh database) degrades to quadratic time.
    ON CONFLICT (entry_id) DO NOTHING
    RETURNING 1
)
SELECT count(*) FROM stamped
"""

INSERT_NETWORK_LINES = """
INSERT INTO settlement.network_line (period_id, account, amount_micros)
SELECT $1, a.name, sum(p.amount)::bigint
FROM settlement.entry_period ep
JOIN ledger.posting p ON p.entry_id = ep.entry_id
JOIN ledger.account a ON a.account_id = p.account_id
WHERE ep.period_id = $1 AND a.owner_kind = 'network' AND a.asset <> 'PTS'
GROUP BY a.name
HAVING sum(p.amount) <> 0
"""

# Per partner: the period's movements on its settlement account by kind, the previous
# period's closing and carried remainder, and the rounded payment instruction. Every partner
# with a movement, or with a balance or remainder left from the previous period, gets one.
# Integer division truncates toward zero: |carried_out| < one minor unit, same sign as due.
_MOVES = """
moves AS (
    SELECT a.owner_id AS partner_id, e.entry_id, e.kind,
           coalesce((e.args ->> 'points')::bigint, 0) AS points,
           sum(p.amount)::bigint AS micros
    FROM settlement.entry_period ep
    JOIN ledger.entry e ON e.entry_id = ep.entry_id
    JOIN ledger.posting p ON p.entry_id = ep.entry_id
    JOIN ledger.account a ON a.account_id = p.account_id
    WHERE ep.period_id = $1 AND a.owner_kind = 'partner' AND a.purpose = 'settlement'
    GROUP BY a.owner_id, e.entry_id, e.kind, e.args
), buckets AS (
    SELECT partner_id,
        count(*) FILTER (WHERE kind = 'earn') AS issued_count,
        coalesce(sum(points) FILTER (WHERE kind = 'earn'), 0)::bigint AS issued_points,
        coalesce(sum(micros) FILTER (WHERE kind = 'earn'), 0)::bigint AS issued_micros,
        count(*) FILTER (WHERE kind IN ('burn', 'capture')) AS redeemed_count,
        coalesce(sum(points) FILTER (WHERE kind IN ('burn', 'capture')), 0)::bigint
            AS redeemed_points,
        coalesce(sum(micros) FILTER (WHERE kind IN ('burn', 'capture')), 0)::bigint
            AS redeemed_micros,
        count(*) FILTER (WHERE kind IN ('refund_earn', 'refund_burn')) AS refunds_count,
        coalesce(sum(micros) FILTER (WHERE kind IN ('refund_earn', 'refund_burn')), 0)::bigint
            AS refunds_micros,
        count(*) FILTER (WHERE kind NOT IN ('earn', 'burn', 'capture', 'refund_earn',
                                            'refund_burn', 'settlement_payment',
                                            'membership_fee', 'membership_refund'))
            AS adjustments_count,
        coalesce(sum(micros) FILTER (WHERE kind NOT IN ('earn', 'burn', 'capture',
            'refund_earn', 'refund_burn', 'settlement_payment', 'membership_fee',
            'membership_refund')), 0)::bigint
            AS adjustments_micros,
        count(*) FILTER (WHERE kind IN ('membership_fee', 'membership_refund'))
            AS membership_count,
        coalesce(sum(micros) FILTER (WHERE kind IN ('membership_fee', 'membership_refund')),
                 0)::bigint AS membership_micros,
        coalesce(sum(micros) FILTER (WHERE kind = 'settlement_payment'), 0)::bigint
            AS payments_micros
    FROM moves GROUP BY partner_id
)"""

INSERT_STATEMENTS = f"""
WITH {_MOVES}, prior AS (
    SELECT partner_id, closing_balance_micros, carried_out_micros
    FROM settlement.statement WHERE period_id = $2
), who AS (
    SELECT partner_id FROM buckets
    UNION
    SELECT partner_id FROM prior WHERE closing_balance_micros <> 0 OR carried_out_micros <> 0
), figures AS (
    SELECT w.partner_id,
        coalesce(pr.closing_balance_micros, 0) AS opening,
        coalesce(pr.carried_out_micros, 0) AS carried_in,
        coalesce(b.issued_count, 0) AS issued_count,
        coalesce(b.issued_points, 0) AS issued_points,
        coalesce(b.issued_micros, 0) AS issued_micros,
        coalesce(b.redeemed_count, 0) AS redeemed_count,
        coalesce(b.redeemed_points, 0) AS redeemed_points,
        coalesce(b.redeemed_micros, 0) AS redeemed_micros,
        coalesce(b.refunds_count, 0) AS refunds_count,
        coalesce(b.refunds_micros, 0) AS refunds_micros,
        coalesce(b.adjustments_count, 0) AS adjustments_count,
        coalesce(b.adjustments_micros, 0) AS adjustments_micros,
        coalesce(b.membership_count, 0) AS membership_count,
        coalesce(b.membership_micros, 0) AS membership_micros,
        coalesce(b.payments_micros, 0) AS payments_micros
    FROM who w
    LEFT JOIN buckets b ON b.partner_id = w.partner_id
    LEFT JOIN prior pr ON pr.partner_id = w.partner_id
), due AS (
    SELECT f.*,
        f.carried_in + f.issued_micros + f.redeemed_micros + f.refunds_micros
            + f.adjustments_micros + f.membership_micros AS to_settle
    FROM figures f
)
INSERT INTO settlement.statement (
    period_id, partner_id, opening_balance_micros, issued_count, issued_points, issued_micros,
    redeemed_count, redeemed_points, redeemed_micros, refunds_count, refunds_micros,
    adjustments_count, adjustments_micros, payments_micros, closing_balance_micros,
    carried_in_micros, payment_due_micros, carried_out_micros, minor_unit_micros,
    membership_count, membership_micros)
SELECT $1, partner_id, opening, issued_count, issued_points, issued_micros,
    redeemed_count, redeemed_points, redeemed_micros, refunds_count, refunds_micros,
    adjustments_count, adjustments_micros, payments_micros,
    opening + issued_micros + redeemed_micros + refunds_micros + adjustments_micros
        + membership_micros + payments_micros,
    carried_in, (to_settle / $3) * $3, to_settle - (to_settle / $3) * $3, $3,
    membership_count, membership_micros
FROM due
ORDER BY partner_id
"""

# The period's statements plus its network lines must sum to zero; and the statements must
# account for every posting to a partner settlement account in the period.
PERIOD_SUMS = """
SELECT
    (SELECT coalesce(sum(closing_balance_micros - opening_balance_micros), 0)::bigint
     FROM settlement.statement WHERE period_id = $1) AS statements_micros,
    (SELECT coalesce(sum(amount_micros), 0)::bigint
     FROM settlement.network_line WHERE period_id = $1) AS network_micros,
    (SELECT coalesce(sum(p.amount), 0)::bigint
     FROM settlement.entry_period ep
     JOIN ledger.posting p ON p.entry_id = ep.entry_id
     JOIN ledger.account a ON a.account_id = p.account_id
     WHERE ep.period_id = $1 AND a.owner_kind = 'partner' AND a.purpose = 'settlement')
        AS partner_postings_micros
"""

# ---- reading ---------------------------------------------------------------------------------

_STATEMENT_COLUMNS = """
s.statement_id, s.period_id, s.partner_id, p.currency, p.period_start, p.period_end, s.state,
s.opening_balance_micros, s.issued_count, s.issued_points, s.issued_micros, s.redeemed_count,
s.redeemed_points, s.redeemed_micros, s.refunds_count, s.refunds_micros, s.adjustments_count,
s.adjustments_micros, s.payments_micros, s.closing_balance_micros, s.carried_in_micros,
s.payment_due_micros, s.carried_out_micros, s.minor_unit_micros, s.payment_entry_id,
s.state_changed_by, s.state_changed_at, s.state_reason, s.created_at, s.membership_count,
s.membership_micros
"""

STATEMENT = f"""
SELECT {_STATEMENT_COLUMNS}
FROM settlement.statement s JOIN settlement.period p ON p.period_id = s.period_id
WHERE s.statement_id = $1 AND ($2::bigint IS NULL OR s.partner_id = $2)
"""

STATEMENT_FOR_UPDATE = STATEMENT + " FOR UPDATE OF s"

STATEMENTS_OF_PERIOD = f"""
SELECT {_STATEMENT_COLUMNS}
FROM settlement.statement s JOIN settlement.period p ON p.period_id = s.period_id
WHERE s.period_id = $1
ORDER BY s.partner_id
"""

# Newest first, keyset on statement_id.
STATEMENTS_PAGE = f"""
SELECT {_STATEMENT_COLUMNS}
FROM settlement.statement s JOIN settlement.period p ON p.period_id = s.period_id
WHERE s.partner_id = $1 AND s.statement_id < $2
ORDER BY s.statement_id DESC
LIMIT $3
"""

NETWORK_LINES = """
SELECT account, amount_micros FROM settlement.network_line WHERE period_id = $1 ORDER BY account
"""

PERIODS_PAGE = """
SELECT p.period_id, p.period_start, p.period_end, p.closed_by, p.closed_at,
       (SELECT count(*) FROM settlement.statement s WHERE s.period_id = p.period_id) AS statements
FROM settlement.period p
WHERE p.period_id < $1
ORDER BY p.period_id DESC
LIMIT $2
"""

SET_STATE = """
UPDATE settlement.statement
SET state = $2, state_changed_by = $3, state_changed_at = now(), state_reason = $4,
    payment_entry_id = coalesce($5, payment_entry_id)
WHERE statement_id = $1
"""

# ---- verification ----------------------------------------------------------------------------

VERIFY_PERIOD_SUMS = """
SELECT p.period_id,
       coalesce(s.total, 0)::bigint AS statements_micros,
       coalesce(n.total, 0)::bigint AS network_micros
FROM settlement.period p
LEFT JOIN (SELECT period_id, sum(closing_balance_micros - opening_balance_micros) AS total
           FROM settlement.statement GROUP BY period_id) s ON s.period_id = p.period_id
LEFT JOIN (SELECT period_id, sum(amount_micros) AS total
           FROM settlement.network_line GROUP BY period_id) n ON n.period_id = p.period_id
WHERE coalesce(s.total, 0) + coalesce(n.total, 0) <> 0
ORDER BY p.period_id
LIMIT $1
"""

# Each statement's movements against the journal postings stamped in its period.
VERIFY_STATEMENTS_MATCH_JOURNAL = """
WITH journal AS (
    SELECT ep.period_id, a.owner_id AS partner_id, sum(p.amount)::bigint AS micros
    FROM settlement.entry_period ep
    JOIN ledger.posting p ON p.entry_id = ep.entry_id
    JOIN ledger.account a ON a.account_id = p.account_id
    WHERE a.owner_kind = 'partner' AND a.purpose = 'settlement'
    GROUP BY ep.period_id, a.owner_id
)
SELECT coalesce(s.period_id, j.period_id) AS period_id,
       coalesce(s.partner_id, j.partner_id) AS partner_id,
       coalesce(s.closing_balance_micros - s.opening_balance_micros, 0)::bigint AS statement_micros,
       coalesce(j.micros, 0)::bigint AS journal_micros
FROM settlement.statement s
FULL JOIN journal j ON j.period_id = s.period_id AND j.partner_id = s.partner_id
WHERE coalesce(s.closing_balance_micros - s.opening_balance_micros, 0) <> coalesce(j.micros, 0)
ORDER BY 1, 2
LIMIT $1
"""

# A statement's opening and carried-in are the previous statement's closing and carried-out.
VERIFY_CHAIN = """
WITH ordered AS (
    SELECT s.statement_id, s.partner_id, s.period_id, s.opening_balance_micros,
           s.carried_in_micros,
           lag(s.closing_balance_micros) OVER w AS prev_closing,
           lag(s.carried_out_micros) OVER w AS prev_carried,
           lag(s.period_id) OVER w AS prev_period_id
    FROM settlement.statement s
    WINDOW w AS (PARTITION BY s.partner_id ORDER BY s.period_id)
)
SELECT statement_id, partner_id, period_id, opening_balance_micros, carried_in_micros,
       coalesce(prev_closing, 0) AS prev_closing, coalesce(prev_carried, 0) AS prev_carried
FROM ordered
WHERE opening_balance_micros <> coalesce(prev_closing, 0)
   OR carried_in_micros <> coalesce(prev_carried, 0)
ORDER BY statement_id
LIMIT $1
"""

# A paid statement's payment entry moved exactly the instruction.
VERIFY_PAYMENTS = """
SELECT s.statement_id, s.payment_due_micros, s.payment_entry_id,
       e.kind, e.partner_id, (e.args ->> 'amount_micros')::bigint AS amount_micros
FROM settlement.statement s
LEFT JOIN ledger.entry e ON e.entry_id = s.payment_entry_id
WHERE s.state = 'paid' AND s.payment_due_micros <> 0
  AND (e.entry_id IS NULL OR e.kind <> 'settlement_payment' OR e.partner_id <> s.partner_id
       OR (e.args ->> 'amount_micros')::bigint <> s.payment_due_micros)
ORDER BY s.statement_id
LIMIT $1
"""

# ---- finance views ---------------------------------------------------------------------------

PARTNER_FLOWS = """
SELECT a.owner_id AS partner_id,
    coalesce(sum((e.args ->> 'points')::bigint) FILTER (WHERE e.kind = 'earn'), 0)::bigint
        AS issued_points,
    coalesce(sum(p.amount) FILTER (WHERE e.kind = 'earn'), 0)::bigint AS issued_micros,
    coalesce(sum((e.args ->> 'points')::bigint)
             FILTER (WHERE e.kind IN ('burn', 'capture')), 0)::bigint AS redeemed_points,
    coalesce(-sum(p.amount) FILTER (WHERE e.kind IN ('burn', 'capture')), 0)::bigint
        AS redeemed_micros
FROM ledger.entry e
JOIN ledger.posting p ON p.entry_id = e.entry_id
JOIN ledger.account a ON a.account_id = p.account_id
WHERE e.created_at >= $1 AND e.created_at < $2
  AND e.kind IN ('earn', 'burn', 'capture')
  AND a.owner_kind = 'partner' AND a.purpose = 'settlement'
GROUP BY a.owner_id
ORDER BY a.owner_id
LIMIT $3
"""

# ---- reconciliation --------------------------------------------------------------------------

INSERT_RECONCILIATION = """
INSERT INTO settlement.reconciliation (partner_id, period_start, period_end, source_format)
VALUES ($1, $2, $3, $4)
RETURNING reconciliation_id
"""

CREATE_STAGE = """
DROP TABLE IF EXISTS pg_temp.recon_stage, pg_temp.recon_bad;
CREATE TEMP TABLE recon_stage (
    line_no      bigint NOT NULL,
    partner_ref  text   NOT NULL,
    type         text   NOT NULL,
    card_number  text   NOT NULL,
    points       bigint NOT NULL,
    amount_minor bigint,
    occurred_at  timestamptz NOT NULL
) ON COMMIT DROP;
CREATE TEMP TABLE recon_bad (
    line_no     bigint NOT NULL,
    partner_ref text,
    detail      text   NOT NULL
) ON COMMIT DROP
"""
STAGE_TABLE = "recon_stage"
STAGE_COLUMNS = (
    "line_no",
    "partner_ref",
    "type",
    "card_number",
    "points",
    "amount_minor",
    "occurred_at",
)
BAD_TABLE = "recon_bad"
BAD_COLUMNS = ("line_no", "partner_ref", "detail")
ANALYZE_STAGE = "ANALYZE recon_stage"

# The network's view of a partner transaction: the points and money that actually moved.
_NETWORK_SIDE = """
SELECT t.id, t.partner_ref, t.kind, t.card_number, t.created_at,
       CASE WHEN t.kind = 'hold' THEN
                CASE t.status WHEN 'captured' THEN t.points_captured
                              WHEN 'voided' THEN 0 ELSE t.points END
            ELSE t.points END AS points,
       CASE t.kind WHEN 'purchase' THEN t.amount_minor
                   WHEN 'refund' THEN coalesce(t.amount_minor, t.value_minor)
                   ELSE t.value_minor END AS amount_minor
FROM partner_transactions t
"""

# All differences in one statement, numbered in report order: file lines by line number,
# then what the partner's file lacks.
INSERT_ITEMS = f"""
WITH ranked AS (
    SELECT s.*, row_number() OVER (PARTITION BY partner_ref ORDER BY line_no) AS occurrence,
           min(line_no) OVER (PARTITION BY partner_ref) AS first_line_no
    FROM recon_stage s
), firsts AS (
    SELECT r.*, n.id AS n_id, n.kind AS n_kind, n.card_number AS n_card, n.points AS n_points,
           n.amount_minor AS n_amount, n.created_at AS n_at,
           array_remove(ARRAY[
               CASE WHEN n.id IS NOT NULL AND r.type <> n.kind THEN 'type' END,
               CASE WHEN n.id IS NOT NULL AND r.card_number <> n.card_number
                    THEN 'card_number' END,
               CASE WHEN n.id IS NOT NULL AND r.points <> n.points THEN 'points' END,
               CASE WHEN n.id IS NOT NULL
                     AND coalesce(r.amount_minor, 0) <> coalesce(n.amount_minor, 0)
                    THEN 'amount' END
           ], NULL) AS mismatch
    FROM ranked r
    LEFT JOIN ({_NETWORK_SIDE} WHERE t.partner_id = $2) n ON n.partner_ref = r.partner_ref
    WHERE r.occurrence = 1
), found AS (
    SELECT line_no, 'malformed' AS status, partner_ref, '{{}}'::text[] AS mismatch, detail,
           NULL::text AS p_type, NULL::text AS p_card, NULL::bigint AS p_points,
           NULL::bigint AS p_amount, NULL::timestamptz AS p_at,
           NULL::uuid AS n_id, NULL::text AS n_kind, NULL::text AS n_card,
           NULL::bigint AS n_points, NULL::bigint AS n_amount, NULL::timestamptz AS n_at
    FROM recon_bad
    UNION ALL
    SELECT line_no, 'duplicate', partner_ref, '{{}}',
           'partner_ref first seen on line ' || first_line_no,
           type, card_number, points, amount_minor, occurred_at,
           NULL, NULL, NULL, NULL, NULL, NULL
    FROM ranked r WHERE occurrence > 1
    UNION ALL
    SELECT line_no, CASE WHEN n_id IS NULL THEN 'missing_in_network' ELSE 'mismatched' END,
           partner_ref, mismatch, NULL,
           type, card_number, points, amount_minor, occurred_at,
           n_id, n_kind, n_card, n_points, n_amount, n_at
    FROM firsts WHERE n_id IS NULL OR cardinality(mismatch) > 0
    UNION ALL
    SELECT NULL, 'missing_at_partner', n.partner_ref, '{{}}', NULL,
           NULL, NULL, NULL, NULL, NULL,
           n.id, n.kind, n.card_number, n.points, n.amount_minor, n.created_at
    FROM ({_NETWORK_SIDE} WHERE t.partner_id = $2 AND t.created_at >= $3 AND t.created_at < $4) n
    -- A malformed line whose partner_ref could be read is reported once, as malformed.
    WHERE NOT EXISTS (SELECT 1 FROM recon_stage s WHERE s.partner_ref = n.partner_ref)
      AND NOT EXISTS (SELECT 1 FROM recon_bad b WHERE b.partner_ref = n.partner_ref)
), inserted AS (
    INSERT INTO settlement.reconciliation_item (
        reconciliation_id, item_no, status, line_no, partner_ref, mismatch, detail,
        partner_type, partner_card, partner_points, partner_amount_minor, partner_occurred_at,
        network_transaction_id, network_type, network_card, network_points,
        network_amount_minor, network_occurred_at)
    SELECT $1, row_number() OVER (ORDER BY line_no NULLS LAST, n_at, partner_ref),
           status, line_no, partner_ref, mismatch, detail, p_type, p_card, p_points, p_amount,
           p_at, n_id, n_kind, n_card, n_points, n_amount, n_at
    FROM found
    RETURNING status, mismatch
)
SELECT
    count(*) FILTER (WHERE status = 'missing_in_network') AS missing_in_network,
    count(*) FILTER (WHERE status = 'missing_at_partner') AS missing_at_partner,
    count(*) FILTER (WHERE status = 'mismatched') AS mismatched,
    count(*) FILTER (WHERE 'points' = ANY (mismatch)) AS mismatched_points,
    count(*) FILTER (WHERE 'amount' = ANY (mismatch)) AS mismatched_amount,
    count(*) FILTER (WHERE status = 'mismatched'
                     AND NOT ('points' = ANY (mismatch) OR 'amount' = ANY (mismatch)))
        AS mismatched_other,
    count(*) FILTER (WHERE status = 'duplicate') AS duplicates,
    count(*) FILTER (WHERE status = 'malformed') AS malformed
FROM inserted
"""

STAGE_TOTALS = f"""
WITH firsts AS (
    SELECT DISTINCT ON (partner_ref) points, amount_minor
    FROM recon_stage ORDER BY partner_ref, line_no
)
SELECT
    (SELECT count(*) FROM firsts) AS firsts,
    (SELECT coalesce(sum(points), 0)::bigint FROM firsts) AS partner_points,
    (SELECT coalesce(sum(amount_minor), 0)::bigint FROM firsts) AS partner_amount,
    (SELECT coalesce(sum(points), 0)::bigint FROM ({_NETWORK_SIDE}
        WHERE t.partner_id = $1 AND t.created_at >= $2 AND t.created_at < $3) n)
        AS network_points,
    (SELECT coalesce(sum(amount_minor), 0)::bigint FROM ({_NETWORK_SIDE}
        WHERE t.partner_id = $1 AND t.created_at >= $2 AND t.created_at < $3) n)
        AS network_amount
"""

SET_TOTALS = """
UPDATE settlement.reconciliation
SET lines_total = $2, matched = $3, missing_in_network = $4, missing_at_partner = $5,
    mismatched_points = $6, mismatched_amount = $7, mismatched_other = $8, duplicates = $9,
    malformed = $10, partner_points_total = $11, network_points_total = $12,
    partner_amount_minor_total = $13, network_amount_minor_total = $14
WHERE reconciliation_id = $1
"""

RECONCILIATION = """
SELECT * FROM settlement.reconciliation
WHERE reconciliation_id = $1 AND ($2::bigint IS NULL OR partner_id = $2)
"""

_ITEM_COLUMNS = """
item_no, status, line_no, partner_ref, mismatch, detail, partner_type, partner_card,
partner_points, partner_amount_minor, partner_occurred_at, network_transaction_id,
network_type, network_card, network_points, network_amount_minor, network_occurred_at,
resolution, resolution_reason, resolved_by, resolved_at, adjustment_entry_id
"""

ITEMS_PAGE = f"""
SELECT {_ITEM_COLUMNS} FROM settlement.reconciliation_item
WHERE reconciliation_id = $1 AND item_no > $2
ORDER BY item_no
LIMIT $3
"""

ITEM = f"""
SELECT {_ITEM_COLUMNS} FROM settlement.reconciliation_item
WHERE reconciliation_id = $1 AND item_no = $2
"""

# Over all of a report's differences, not one page of them (the primary key's range).
RESOLUTION_COUNTS = """
SELECT count(*) FILTER (WHERE resolution IS NOT NULL) AS resolved,
       count(*) FILTER (WHERE resolution IS NULL) AS unresolved
FROM settlement.reconciliation_item
WHERE reconciliation_id = $1
"""

ITEM_FOR_UPDATE = f"""
SELECT {_ITEM_COLUMNS} FROM settlement.reconciliation_item
WHERE reconciliation_id = $1 AND item_no = $2
FOR UPDATE
"""

RESOLVE_ITEM = f"""
UPDATE settlement.reconciliation_item
SET resolution = $3, resolution_reason = $4, resolved_by = $5, resolved_at = now(),
    adjustment_entry_id = $6
WHERE reconciliation_id = $1 AND item_no = $2
RETURNING {_ITEM_COLUMNS}
"""

INSERT_AUDIT = """
INSERT INTO settlement.reconciliation_audit (reconciliation_id, item_no, action, actor, reason,
                                             adjustment_entry_id)
VALUES ($1, $2, $3, $4, $5, $6)
"""
