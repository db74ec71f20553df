"""SQL of the console's TOTP columns and policy (migration 0141)."""

IS_ENROLLED = "SELECT totp_sealed IS NOT NULL FROM console.users WHERE user_id = $1"

PENDING = "SELECT totp_pending_sealed FROM console.users WHERE user_id = $1"

SET_PENDING = "UPDATE console.users SET totp_pending_sealed = $2 WHERE user_id = $1"

CONFIRM = """
UPDATE console.users
SET totp_sealed = totp_pending_sealed, totp_pending_sealed = NULL,
    totp_enrolled_at = $2, totp_last_step = $3
WHERE user_id = $1 AND totp_pending_sealed IS NOT NULL
"""

ENROLLED_FOR_UPDATE = """
SELECT totp_sealed, totp_last_step FROM console.users WHERE user_id = $1 FOR UPDATE
"""

SET_LAST_STEP = "UPDATE console.users SET totp_last_step = $2 WHERE user_id = $1"

DISABLE = """
UPDATE console.users
SET totp_sealed = NULL, totp_pending_sealed = NULL, totp_enrolled_at = NULL, totp_last_step = NULL
WHERE user_id = $1 AND (totp_sealed IS NOT NULL OR totp_pending_sealed IS NOT NULL)
RETURNING true
"""

POLICY = "SELECT role, required FROM console.totp_policy"

POLICY_OF = "SELECT coalesce((SELECT required FROM console.totp_policy WHERE role = $1), false)"

SET_POLICY = """
INSERT INTO console.totp_policy (role, required, changed_by, changed_at)
VALUES ($1, $2, $3, now())
ON CONFLICT (role) DO UPDATE
SET required = EXCLUDED.required, changed_by = EXCLUDED.changed_by, changed_at = now()
"""

USER_ID_BY_EMAIL = "SELECT user_id FROM console.users WHERE email = $1"

INSERT_STAGED_SESSION = """
INSERT INTO console.sessions (session_digest, user_id, created_at, expires_at, stage)
VALUES ($1, $2, $3, $4, $5)
"""

SESSION_USER_STAGED = """
SELECT u.user_id, u.email, u.role, s.stage
FROM console.sessions s JOIN console.users u USING (user_id)
WHERE s.session_digest = $1 AND s.expires_at > $2
"""
