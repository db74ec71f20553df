"""SQL of the console's own tables (migration 0140): users, sessions, failures, audit log."""

INSERT_USER = """
INSERT INTO console.users (email, role, password_hash, created_by)
VALUES ($1, $2, $3, $4)
ON CONFLICT (email) DO NOTHING
RETURNING user_id, email, role
"""

USER_BY_EMAIL = "SELECT user_id, email, role, password_hash FROM console.users WHERE email = $1"

SET_PASSWORD_HASH = "UPDATE console.users SET password_hash = $2 WHERE user_id = $1"  # noqa: S105

RECENT_FAILURES = """
SELECT count(*) FROM console.sign_in_failures WHERE email = $1 AND failed_at > $2
"""

FORGET_OLD_FAILURES = "DELETE FROM console.sign_in_failures WHERE failed_at <= $1"

FORGET_FAILURES = "DELETE FROM console.sign_in_failures WHERE email = $1"

RECORD_FAILURE = "INSERT INTO console.sign_in_failures (email, failed_at) VALUES ($1, $2)"

INSERT_SESSION = """
INSERT INTO console.sessions (session_digest, user_id, created_at, expires_at)
VALUES ($1, $2, $3, $4)
"""

SESSION_USER = """
SELECT u.user_id, u.email, u.role
FROM console.sessions s JOIN console.users u USING (user_id)
WHERE s.session_digest = $1 AND s.expires_at > $2
"""

DELETE_SESSION = "DELETE FROM console.sessions WHERE session_digest = $1"

FORGET_EXPIRED_SESSIONS = "DELETE FROM console.sessions WHERE expires_at <= $1"

INSERT_AUDIT = """
INSERT INTO console.audit_log (actor, role, action, subject, before, after, detail)
VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7::jsonb)
RETURNING audit_id
"""

AUDIT_PAGE = """
SELECT audit_id, at, actor, role, action, subject,
       before::text AS before, after::text AS after, detail::text AS detail
FROM console.audit_log
WHERE ($1::bigint IS NULL OR audit_id < $1)
ORDER BY audit_id DESC
LIMIT $2
"""

AUDIT_FOR_SUBJECT = """
SELECT audit_id, at, actor, role, action, subject,
       before::text AS before, after::text AS after, detail::text AS detail
FROM console.audit_log
WHERE subject = $1
ORDER BY audit_id DESC
LIMIT $2
"""
