"""SQL of the card page's own tables (migration 0150): sessions, spent links, email codes."""

from __future__ import annotations

INSERT_SESSION = """
INSERT INTO card_sessions (session_hash, shopper_id, expires_at)
VALUES ($1, $2, now() + make_interval(secs => $3))
"""

# A live session: not ended, not expired. The shopper may since have been merged or erased:
# the service functions (`live_shopper_id`) decide that, as they do for a Bearer token.
LIVE_SESSION = """
SELECT shopper_id, expires_at FROM card_sessions
WHERE session_hash = $1 AND ended_at IS NULL AND expires_at > now()
"""

END_SESSION = """
UPDATE card_sessions SET ended_at = now() WHERE session_hash = $1 AND ended_at IS NULL
"""

END_SESSIONS_OF = """
UPDATE card_sessions SET ended_at = now() WHERE shopper_id = $1 AND ended_at IS NULL
"""

# ON CONFLICT DO NOTHING returns no row for a token already spent: the one check of reuse.
MARK_LINK_SPENT = """
INSERT INTO card_spent_tokens (token_id, expires_at) VALUES ($1, $2)
ON CONFLICT (token_id) DO NOTHING
RETURNING token_id
"""

FORGET_SPENT_LINKS = "DELETE FROM card_spent_tokens WHERE expires_at < now()"

FORGET_OLD_SESSIONS = "DELETE FROM card_sessions WHERE expires_at < now() - interval '1 day'"

CODES_SENT_SINCE = """
SELECT count(*) FROM card_sign_in_codes
WHERE email_hash = $1 AND created_at > now() - make_interval(secs => $2)
"""

INSERT_CODE = """
INSERT INTO card_sign_in_codes (email_hash, shopper_id, code_hash, expires_at)
VALUES ($1, $2, $3, now() + make_interval(secs => $4))
RETURNING code_id
"""

# The live shoppers with this address (shopper_contacts, from the email package, 0110).
# Addresses are not unique: the caller signs in only when exactly one shopper has it.
SHOPPERS_WITH_EMAIL = """
SELECT c.shopper_id FROM shopper_contacts c JOIN shoppers s ON s.id = c.shopper_id
WHERE lower(c.email) = lower($1) AND s.erased_at IS NULL AND s.merged_into_id IS NULL
LIMIT 2
"""

# The newest unexpired, unused code of the address, locked: two concurrent tries count twice.
LATEST_CODE = """
SELECT code_id, shopper_id, code_hash, tries FROM card_sign_in_codes
WHERE email_hash = $1 AND used_at IS NULL AND expires_at > now()
ORDER BY created_at DESC, code_id DESC
LIMIT 1
FOR UPDATE
"""

COUNT_TRY = "UPDATE card_sign_in_codes SET tries = tries + 1 WHERE code_id = $1"

USE_CODE = "UPDATE card_sign_in_codes SET used_at = now() WHERE code_id = $1"

DELETE_CODES_OF = "DELETE FROM card_sign_in_codes WHERE shopper_id = $1"

FORGET_OLD_CODES = "DELETE FROM card_sign_in_codes WHERE created_at < now() - interval '1 day'"

# The partner a card-link minted by the CLI names (a token always names one): the enroller.
ENROLLING_PARTNER = "SELECT enrolled_by_partner_id FROM shoppers WHERE id = $1"
