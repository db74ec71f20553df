"""Every SQL statement of the membership room (schema: infra/migrations/0170_membership.sql)."""

from __future__ import annotations

NETWORK = """
SELECT currency::text AS currency, membership_commission_bps, default_issue_price_micros,
       points_lifetime_months
FROM network_settings LIMIT 1
"""

# ---- plans -----------------------------------------------------------------------------------

# Versions of one code are numbered under a lock on the code: two creates cannot both take n+1.
LOCK_PLAN_CODE = "SELECT pg_advisory_xact_lock(hashtext('membership_plan:' || $1::text))"

_PLAN_COLUMNS = """
p.id, p.code, p.version, p.name, p.price_minor, p.currency::text AS currency, p.term,
p.earn_multiplier_bps, p.monthly_bonus_points, p.tier_floor, p.perks, p.commission_bps,
p.created_at, p.retired_at,
(p.retired_at IS NULL AND p.version = (SELECT max(v.version) FROM membership_plans v
                                       WHERE v.code = p.code)) AS sellable
"""

INSERT_PLAN = """
INSERT INTO membership_plans (code, version, name, price_minor, currency, term,
                              earn_multiplier_bps, monthly_bonus_points, tier_floor, perks,
                              commission_bps, created_by)
SELECT $1, coalesce((SELECT max(version) FROM membership_plans WHERE code = $1), 0) + 1,
       $2, $3, $4, $5, $6, $7, $8, $9, $10, $11
RETURNING id
"""

PLAN = f"SELECT {_PLAN_COLUMNS} FROM membership_plans p WHERE p.id = $1"

PLANS = f"SELECT {_PLAN_COLUMNS} FROM membership_plans p ORDER BY p.id DESC LIMIT $1"

# ---- sale ------------------------------------------------------------------------------------

SALE_CONTEXT = """
SELECT c.shopper_id, c.status AS card_status,
       EXISTS (SELECT 1 FROM memberships
               WHERE partner_id = $1::bigint AND partner_ref = $3::text) AS ref_taken
FROM (SELECT 1) one
LEFT JOIN shopper_cards c ON c.card_number = $2::text
"""

# NULL: a unique key refused it, (partner_id, partner_ref) or the shopper's one active
# membership; DO NOTHING without a target covers both (and waits for a concurrent insert).
INSERT_MEMBERSHIP = """
INSERT INTO memberships (plan_id, shopper_id, partner_id, partner_ref, status, auto_renew,
                         started_at, period_no, period_start, period_end, bonus_next_at)
VALUES ($1, $2, $3, $4, 'active', $5, $6, 0, $6, $7, $8)
ON CONFLICT DO NOTHING
RETURNING id
"""

INSERT_CHARGE = """
INSERT INTO membership_charges (membership_id, period_no, kind, partner_id, fee_minor,
                                commission_minor, commission_bps, ledger_entry_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""

INSERT_BONUS_GRANT = """
INSERT INTO membership_bonus_grants (membership_id, month_no, points, ledger_entry_id)
VALUES ($1, $2, $3, $4)
ON CONFLICT (membership_id, month_no) DO NOTHING
"""

SET_BONUS_NEXT = """
UPDATE memberships SET bonus_next_month = $2, bonus_next_at = $3 WHERE id = $1
"""

# ---- reading ---------------------------------------------------------------------------------

_MEMBERSHIP_COLUMNS = """
m.id, m.plan_id, m.shopper_id, m.partner_id, m.partner_ref, m.status, m.auto_renew,
m.started_at, m.period_no, m.period_start, m.period_end, m.cancelled_at,
m.bonus_next_month, m.bonus_next_at, m.reminded_period_no,
coalesce((SELECT sum(fee_minor) FROM membership_charges
          WHERE membership_id = m.id AND kind <> 'refund'), 0)::bigint AS fees_minor,
coalesce((SELECT sum(CASE kind WHEN 'refund' THEN -commission_minor ELSE commission_minor END)
          FROM membership_charges WHERE membership_id = m.id), 0)::bigint AS commission_minor,
coalesce((SELECT sum(fee_minor) FROM membership_charges
          WHERE membership_id = m.id AND kind = 'refund'), 0)::bigint AS refunded_minor,
coalesce((SELECT sum(points) FROM membership_bonus_grants
          WHERE membership_id = m.id), 0)::bigint AS bonus_points_granted,
coalesce((SELECT sum(points) FROM membership_bonus_grants
          WHERE membership_id = m.id AND reversal_entry_id IS NOT NULL), 0)::bigint
    AS bonus_points_reversed
"""

# $2 NULL: the operator (any partner's); else only that partner's membership.
MEMBERSHIP = f"""
SELECT {_MEMBERSHIP_COLUMNS} FROM memberships m
WHERE m.id = $1 AND ($2::bigint IS NULL OR m.partner_id = $2)
"""

MEMBERSHIP_FOR_UPDATE = """
SELECT m.*, p.term, p.monthly_bonus_points FROM memberships m
JOIN membership_plans p ON p.id = m.plan_id
WHERE m.id = $1 AND ($2::bigint IS NULL OR m.partner_id = $2)
FOR UPDATE OF m
"""

# The shopper's membership: the active one, else the latest.
MY_MEMBERSHIP = f"""
SELECT {_MEMBERSHIP_COLUMNS} FROM memberships m
WHERE m.shopper_id = $1
ORDER BY (m.status = 'active') DESC, m.id DESC
LIMIT 1
"""

# ---- cancellation ----------------------------------------------------------------------------

# The charge of the period in force (its sale or its renewal).
PERIOD_CHARGE = """
SELECT fee_minor, commission_minor, commission_bps, ledger_entry_id FROM membership_charges
WHERE membership_id = $1 AND period_no = $2 AND kind <> 'refund'
"""

# The bonus of the benefit month in progress at $2, if granted and not yet reversed.
CURRENT_BONUS_GRANT = """
SELECT month_no, points, ledger_entry_id FROM membership_bonus_grants
WHERE membership_id = $1 AND reversal_entry_id IS NULL
ORDER BY month_no DESC LIMIT 1
"""

SET_BONUS_REVERSED = """
UPDATE membership_bonus_grants SET reversal_entry_id = $3
WHERE membership_id = $1 AND month_no = $2
"""

CANCEL = """
UPDATE memberships SET status = 'cancelled', cancelled_at = $2, cancelled_by = $3,
                       cancel_reason = $4, bonus_next_at = NULL
WHERE id = $1
"""

# ---- renewal and the monthly bonus (workers) -------------------------------------------------

DUE_FOR_RENEWAL = """
SELECT m.*, p.term, p.price_minor, p.commission_bps, p.retired_at, p.monthly_bonus_points
FROM memberships m JOIN membership_plans p ON p.id = m.plan_id
WHERE m.status = 'active' AND m.period_end <= $1
ORDER BY m.period_end
LIMIT $2
FOR UPDATE OF m SKIP LOCKED
"""

RENEW = """
UPDATE memberships SET period_no = $2, period_start = $3, period_end = $4 WHERE id = $1
"""

EXPIRE = "UPDATE memberships SET status = 'expired', bonus_next_at = NULL WHERE id = $1"

DUE_FOR_BONUS = """
SELECT m.id, m.shopper_id, m.partner_id, m.started_at, m.bonus_next_month, m.period_end,
       p.monthly_bonus_points
FROM memberships m JOIN membership_plans p ON p.id = m.plan_id
WHERE m.status = 'active' AND m.bonus_next_at IS NOT NULL AND m.bonus_next_at <= $1
  AND m.bonus_next_at < m.period_end
ORDER BY m.bonus_next_at
LIMIT $2
FOR UPDATE OF m SKIP LOCKED
"""

# Active auto-renewing memberships whose term ends before $1 (now + the notice) and after $2
# (now), not yet reminded for this period.
DUE_FOR_REMINDER = """
SELECT m.id, m.shopper_id, m.partner_id, m.period_no, m.period_end, p.name AS plan_name,
       p.price_minor, p.currency::text AS currency
FROM memberships m JOIN membership_plans p ON p.id = m.plan_id
WHERE m.status = 'active' AND m.auto_renew AND p.retired_at IS NULL
  AND m.period_end <= $1 AND m.period_end > $2
  AND m.reminded_period_no IS DISTINCT FROM m.period_no
ORDER BY m.period_end
LIMIT $3
FOR UPDATE OF m SKIP LOCKED
"""

SET_REMINDED = "UPDATE memberships SET reminded_period_no = period_no WHERE id = $1"
