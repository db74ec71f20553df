"""SQL of the challenges package (tables of migration 0180)."""

from __future__ import annotations

CHALLENGE_COLUMNS = """
id, partner_id, name, kind, goal, window_weeks, reward_points, budget_points, awarded_points,
starts_at, ends_at, created_at
"""

INSERT_CHALLENGE = f"""
INSERT INTO challenges (partner_id, name, kind, goal, window_weeks, reward_points, budget_points,
                        starts_at, ends_at, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
RETURNING {CHALLENGE_COLUMNS}
"""

# $2 NULL: the network's own challenges; a partner sees only its own (others answer 404).
CHALLENGE = f"""
SELECT {CHALLENGE_COLUMNS} FROM challenges
WHERE id = $1 AND partner_id IS NOT DISTINCT FROM $2
"""

CHALLENGES_PAGE = f"""
SELECT {CHALLENGE_COLUMNS} FROM challenges
WHERE partner_id IS NOT DISTINCT FROM $1 AND ($2::bigint IS NULL OR id < $2)
ORDER BY id DESC
LIMIT $3
"""

# Challenges a shopper's purchases and refunds may move: started, and not past the claw-back
# window after their end. Ascending id: the lock order.
CHALLENGES_IN_PLAY = f"""
SELECT {CHALLENGE_COLUMNS} FROM challenges
WHERE starts_at <= $1 AND ends_at > $1 - make_interval(days => challenge_clawback_days())
ORDER BY id
LIMIT $2
"""

# The queue: claim a batch by lease (a crashed worker's lease runs out and another claims it).
CLAIM = """
WITH due AS (
    SELECT event_id FROM challenge_queue
    WHERE leased_until IS NULL OR leased_until < now()
    ORDER BY event_id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE challenge_queue q SET leased_until = now() + make_interval(secs => $2)
FROM due WHERE q.event_id = due.event_id
RETURNING q.event_id, q.shopper_id
"""

DONE = "DELETE FROM challenge_queue WHERE event_id = ANY($1::bigint[])"

LOCK_PROGRESS = """
INSERT INTO challenge_progress (shopper_id, challenge_id)
SELECT $1, c FROM unnest($2::bigint[]) AS c
ON CONFLICT DO NOTHING
"""

PROGRESS_FOR_UPDATE = """
SELECT challenge_id, progress FROM challenge_progress
WHERE shopper_id = $1 AND challenge_id = ANY($2::bigint[])
ORDER BY challenge_id
FOR UPDATE
"""

SET_PROGRESS = """
UPDATE challenge_progress SET progress = $3, updated_at = now()
WHERE shopper_id = $1 AND challenge_id = $2 AND progress IS DISTINCT FROM $3
"""

# A shopper's purchases since `$2`, with what their refunds reversed; and where each partner's
# first purchase of the shopper was (for "a partner new to the shopper").
PURCHASES = """
SELECT p.id, p.partner_id, p.created_at, p.points, p.amount_minor,
       coalesce(r.points, 0)::bigint AS refunded_points,
       coalesce(r.amount_minor, 0)::bigint AS refunded_minor,
       p.id = f.first_id AS first_at_partner
FROM partner_transactions p
LEFT JOIN LATERAL (
    SELECT sum(x.points) AS points, sum(x.amount_minor) AS amount_minor
    FROM partner_transactions x WHERE x.original_id = p.id AND x.kind = 'refund'
) r ON true
LEFT JOIN LATERAL (
    SELECT y.id AS first_id FROM partner_transactions y
    WHERE y.shopper_id = p.shopper_id AND y.partner_id = p.partner_id AND y.kind = 'purchase'
    ORDER BY y.created_at, y.id LIMIT 1
) f ON true
WHERE p.shopper_id = $1 AND p.kind = 'purchase' AND p.created_at >= $2
ORDER BY p.created_at, p.id
LIMIT $3
"""

RESERVE_BUDGET = """
UPDATE challenges SET awarded_points = awarded_points + reward_points
WHERE id = $1 AND awarded_points + reward_points <= budget_points
RETURNING reward_points
"""

RETURN_BUDGET = "UPDATE challenges SET awarded_points = awarded_points - $2 WHERE id = $1"

AWARD = """
SELECT state, grants, points, entry_id FROM challenge_awards
WHERE shopper_id = $1 AND challenge_id = $2
"""

UPSERT_AWARD = """
INSERT INTO challenge_awards (shopper_id, challenge_id, state, grants, points, entry_id,
                              awarded_at)
VALUES ($1, $2, 'active', $3, $4, $5, now())
ON CONFLICT (shopper_id, challenge_id) DO UPDATE
SET state = 'active', grants = EXCLUDED.grants, points = EXCLUDED.points,
    entry_id = EXCLUDED.entry_id, awarded_at = EXCLUDED.awarded_at,
    revoked_at = NULL, revoke_entry_id = NULL
WHERE challenge_awards.state = 'revoked'
"""

REVOKE_AWARD = """
UPDATE challenge_awards SET state = 'revoked', revoked_at = now(), revoke_entry_id = $3
WHERE shopper_id = $1 AND challenge_id = $2 AND state = 'active'
"""

# The shopper who has waited longest with the goal reached and no active award: the budget a
# claw-back returns goes to them first (their fold reserves it like any other).
WAITING = """
SELECT p.shopper_id FROM challenge_progress p
WHERE p.challenge_id = $1 AND p.progress >= $2 AND p.shopper_id <> $3
  AND NOT EXISTS (SELECT 1 FROM challenge_awards a
                  WHERE a.challenge_id = p.challenge_id AND a.shopper_id = p.shopper_id
                    AND a.state = 'active')
ORDER BY p.updated_at, p.shopper_id
LIMIT 1
"""

ISSUE_PRICE = """
SELECT issue_price_micros FROM partner_pricing_versions
WHERE partner_id = $1 AND effective_at <= now()
ORDER BY effective_at DESC LIMIT 1
"""

EXPIRES_AT = """
SELECT now() + make_interval(months => points_lifetime_months) FROM network_settings LIMIT 1
"""

# ---- the shopper's view -------------------------------------------------------------------

MY_PROGRESS = """
SELECT c.id, c.name, c.kind, c.partner_id, c.goal, c.window_weeks, c.reward_points, c.ends_at,
       c.starts_at,
       coalesce(p.progress, 0) AS progress, coalesce(p.leaderboard_opt_in, false) AS opt_in,
       a.state AS award_state
FROM challenges c
LEFT JOIN challenge_progress p ON p.challenge_id = c.id AND p.shopper_id = $1
LEFT JOIN challenge_awards a ON a.challenge_id = c.id AND a.shopper_id = $1
WHERE (c.starts_at <= $2 AND c.ends_at > $2) OR a.shopper_id IS NOT NULL
ORDER BY c.ends_at, c.id
LIMIT $3
"""

MY_BADGES = """
SELECT a.challenge_id, c.name, a.awarded_at, a.state, a.revoked_at
FROM challenge_awards a JOIN challenges c ON c.id = a.challenge_id
WHERE a.shopper_id = $1
ORDER BY a.awarded_at DESC, a.challenge_id
LIMIT $2
"""

CHALLENGE_ANY = f"SELECT {CHALLENGE_COLUMNS} FROM challenges WHERE id = $1"

OPT_IN = """
INSERT INTO challenge_progress (shopper_id, challenge_id, leaderboard_opt_in) VALUES ($1, $2, $3)
ON CONFLICT (shopper_id, challenge_id)
DO UPDATE SET leaderboard_opt_in = EXCLUDED.leaderboard_opt_in
"""

# Ranks only: progress values of the opted-in, dense-ranked; never a shopper id leaves SQL.
BOARD = """
WITH board AS (
    SELECT shopper_id, progress, dense_rank() OVER (ORDER BY progress DESC) AS rank
    FROM challenge_progress WHERE challenge_id = $1 AND leaderboard_opt_in
)
SELECT rank, progress, count(*) AS shoppers, bool_or(shopper_id = $2) AS you,
       (SELECT count(*) FROM board) AS opted_in
FROM board GROUP BY rank, progress ORDER BY rank LIMIT $3
"""

MY_RANK = """
WITH board AS (
    SELECT shopper_id, progress, dense_rank() OVER (ORDER BY progress DESC) AS rank
    FROM challenge_progress WHERE challenge_id = $1 AND leaderboard_opt_in
)
SELECT rank, progress FROM board WHERE shopper_id = $2
"""
