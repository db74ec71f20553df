"""The shoppers package's SQL, in one place."""

INSERT_SHOPPER = """
INSERT INTO shoppers (enrolled_by_partner_id) VALUES ($1) RETURNING id
"""

# ON CONFLICT DO NOTHING: a taken number returns no row instead of aborting the transaction.
INSERT_CARD = """
INSERT INTO shopper_cards (card_number, shopper_id, issued_by) VALUES ($1, $2, $3)
ON CONFLICT (card_number) DO NOTHING
RETURNING card_number
"""

SHOPPER_BY_CARD = """
SELECT shopper_id, status FROM shopper_cards WHERE card_number = $1
"""

# ---- tiers -----------------------------------------------------------------------------------

TIER_OF = "SELECT tier FROM shopper_tiers WHERE shopper_id = $1"

TIER_ROW = "SELECT tier, since, review_at FROM shopper_tiers WHERE shopper_id = $1"

# The tier floor of the shopper's active paid membership at $2 (partners/membership), if any.
MEMBERSHIP_TIER_FLOOR = """
SELECT mp.tier_floor FROM memberships m JOIN membership_plans mp ON mp.id = m.plan_id
WHERE m.shopper_id = $1 AND m.status = 'active' AND m.period_end > $2
"""

# Purchases net of their refunds over the 12 months before $2, for the shopper and every shopper
# merged into it: the function (migration 0192) that the purchase's statements call too.
QUALIFICATION_12M = """
SELECT points_earned, spend_minor FROM shopper_qualification_12m($1::bigint, $2::timestamptz)
"""

ENSURE_TIER_ROW = """
INSERT INTO shopper_tiers (shopper_id, tier, since, review_at)
VALUES ($1, 'member', $2, $2::timestamptz + interval '1 year')
ON CONFLICT (shopper_id) DO NOTHING
"""

TIER_FOR_UPDATE = "SELECT tier FROM shopper_tiers WHERE shopper_id = $1 FOR UPDATE"

# A change starts a fresh year: the next review is a year after it.
SET_TIER = """
UPDATE shopper_tiers
SET tier = $2, since = $3, review_at = $3::timestamptz + interval '1 year', updated_at = now()
WHERE shopper_id = $1
"""

NEXT_REVIEW = """
UPDATE shopper_tiers SET review_at = $2::timestamptz + interval '1 year', updated_at = now()
WHERE shopper_id = $1
"""

TIERS_DUE_FOR_REVIEW = """
SELECT shopper_id, tier FROM shopper_tiers
WHERE tier <> 'member' AND review_at <= $1
ORDER BY review_at
LIMIT $2
FOR UPDATE SKIP LOCKED
"""

# ---- identity: cards, identifiers, merges ----------------------------------------------------

SHOPPER_FOR_UPDATE = """
SELECT id, created_at, birth_date, erased_at, merged_into_id FROM shoppers WHERE id = $1 FOR UPDATE
"""

SHOPPER = """
SELECT id, created_at, birth_date, erased_at, merged_into_id FROM shoppers WHERE id = $1
"""

# Both shoppers of a merge, locked in id order so crossed merges cannot deadlock.
SHOPPERS_FOR_UPDATE = """
SELECT id, erased_at, merged_into_id FROM shoppers WHERE id = ANY($1::bigint[])
ORDER BY id FOR UPDATE
"""

CARD_FOR_UPDATE = """
SELECT c.card_number, c.shopper_id, c.status, c.replaced_by, c.created_at, s.erased_at
FROM shopper_cards c JOIN shoppers s ON s.id = c.shopper_id
WHERE c.card_number = $1
FOR UPDATE OF c
"""

SET_CARD_STATUS = """
UPDATE shopper_cards
SET status = $2, status_reason = $3, replaced_by = $4, status_at = now()
WHERE card_number = $1
RETURNING card_number, status, created_at, replaced_by
"""

INSERT_CARD_FULL = """
INSERT INTO shopper_cards (card_number, shopper_id, issued_by) VALUES ($1, $2, $3)
ON CONFLICT (card_number) DO NOTHING
RETURNING card_number, status, created_at, replaced_by
"""

CARDS_OF = """
SELECT card_number, status, created_at, replaced_by FROM shopper_cards
WHERE shopper_id = $1 ORDER BY created_at, card_number
"""

MOVE_CARDS = """
UPDATE shopper_cards SET shopper_id = $2 WHERE shopper_id = $1 RETURNING card_number
"""

MOVE_IDENTIFIERS = "UPDATE shopper_identifiers SET shopper_id = $2 WHERE shopper_id = $1"

# The survivor keeps its own consent; it takes the absorbed one's only when it has none.
MOVE_CONSENT = """
WITH gone AS (DELETE FROM shopper_consents WHERE shopper_id = $1 RETURNING *)
INSERT INTO shopper_consents (shopper_id, data_sharing, marketing, updated_at)
SELECT $2, data_sharing, marketing, updated_at FROM gone
ON CONFLICT (shopper_id) DO NOTHING
"""

# The absorbed shopper, and any shopper absorbed by it before, now point at the survivor.
MARK_MERGED = """
UPDATE shoppers SET merged_into_id = $2 WHERE id = $1 OR merged_into_id = $1
"""

INSERT_IDENTIFIER = """
INSERT INTO shopper_identifiers (kind, digest, shopper_id) VALUES ($1, $2, $3)
ON CONFLICT (kind, digest) DO UPDATE SET kind = EXCLUDED.kind
    WHERE shopper_identifiers.shopper_id = EXCLUDED.shopper_id
RETURNING shopper_id
"""

DELETE_IDENTIFIERS_OF_KIND = "DELETE FROM shopper_identifiers WHERE shopper_id = $1 AND kind = $2"

SHOPPER_BY_IDENTIFIER = """
SELECT i.shopper_id, s.erased_at
FROM shopper_identifiers i JOIN shoppers s ON s.id = i.shopper_id
WHERE i.kind = $1 AND i.digest = $2
"""

HAS_IDENTIFIER = """
SELECT EXISTS (SELECT 1 FROM shopper_identifiers WHERE shopper_id = $1 AND kind = $2)
"""

DELETE_TIER_ROW = "DELETE FROM shopper_tiers WHERE shopper_id = $1"

# ---- the shopper's own view (/v1/me) ---------------------------------------------------------

HAS_PHONE = """
SELECT EXISTS (SELECT 1 FROM shopper_identifiers WHERE shopper_id = $1 AND kind = 'phone')
"""

SET_BIRTH_DATE = "UPDATE shoppers SET birth_date = $2 WHERE id = $1"

# Partner names of a page of journal entries. Read-only use of ledger.entry by primary key:
# HistoryItem does not carry the entry's partner (see ARCHITECTURE.md).
ENTRY_PARTNERS = """
SELECT e.entry_id, e.partner_id, p.name AS partner_name
FROM ledger.entry e LEFT JOIN partners p ON p.id = e.partner_id
WHERE e.entry_id = ANY($1::bigint[])
"""

CONSENT = "SELECT data_sharing, marketing, updated_at FROM shopper_consents WHERE shopper_id = $1"

UPSERT_CONSENT = """
INSERT INTO shopper_consents (shopper_id, data_sharing, marketing, updated_at)
VALUES ($1, coalesce($2, false), coalesce($3, false), now())
ON CONFLICT (shopper_id) DO UPDATE SET
    data_sharing = coalesce($2, shopper_consents.data_sharing),
    marketing = coalesce($3, shopper_consents.marketing),
    updated_at = now()
RETURNING data_sharing, marketing, updated_at
"""

INSERT_NPS = """
INSERT INTO nps_answers (shopper_id, score, comment) VALUES ($1, $2, $3)
RETURNING answer_id, answered_at
"""

# ---- erasure ---------------------------------------------------------------------------------

ERASE_SHOPPER = """
UPDATE shoppers SET birth_date = NULL, erased_at = $2 WHERE id = $1 AND erased_at IS NULL
RETURNING erased_at
"""

DELETE_IDENTIFIERS = "DELETE FROM shopper_identifiers WHERE shopper_id = $1"

# Card numbers stay (partner transactions and reconciliation name them) but none works again.
BLOCK_CARDS_OF = """
UPDATE shopper_cards SET status = 'blocked', status_reason = 'erased', status_at = now()
WHERE shopper_id = $1 AND status = 'active'
"""

DELETE_CONSENT = "DELETE FROM shopper_consents WHERE shopper_id = $1"

ERASE_NPS_COMMENTS = "UPDATE nps_answers SET comment = NULL WHERE shopper_id = $1"

DELETE_SEGMENTS = "DELETE FROM shopper_segments WHERE shopper_id = $1"

# ---- expiry ----------------------------------------------------------------------------------

POINTS_LIFETIME_MONTHS = "SELECT points_lifetime_months FROM network_settings"

EXPIRES_AT = """
SELECT $1::timestamptz + make_interval(months => points_lifetime_months) FROM network_settings
"""

SET_POINTS_LIFETIME_MONTHS = """
UPDATE network_settings SET points_lifetime_months = $1 RETURNING points_lifetime_months
"""

# Lots with free points expiring within the notice window that have had no notice yet. A
# notice is keyed by the root lot, so a lot moved by a merge is not noticed twice. Read-only
# use of ledger.lot (see ARCHITECTURE.md).
LOTS_TO_NOTICE = """
SELECT l.shopper_id, l.lot_id, l.root_lot_id, l.partner_id, l.expires_at,
       l.remaining - l.reserved AS points
FROM ledger.lot l
JOIN shoppers s ON s.id = l.shopper_id
WHERE l.remaining > l.reserved
  AND l.expires_at > $1 AND l.expires_at <= $2
  AND s.erased_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM lot_expiry_notices n WHERE n.root_lot_id = l.root_lot_id)
ORDER BY l.expires_at, l.lot_id
LIMIT $3
"""

# ON CONFLICT DO NOTHING: a concurrent run that noticed the lot first wins; this one skips it.
INSERT_NOTICE = """
INSERT INTO lot_expiry_notices (root_lot_id, shopper_id, lot_id, expires_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (root_lot_id) DO NOTHING
RETURNING root_lot_id
"""

SET_NOTICE_EVENT = "UPDATE lot_expiry_notices SET event_id = $2 WHERE root_lot_id = $1"

# ---- consent per partner (issues 16, 17) -------------------------------------------------------

PARTNER_CONSENTS = """
SELECT p.id AS partner_id, p.slug, p.name, coalesce(c.granted, false) AS granted, c.updated_at
FROM partners p
LEFT JOIN shopper_partner_consents c ON c.partner_id = p.id AND c.shopper_id = $1
ORDER BY p.id
LIMIT $2
"""

UPSERT_PARTNER_CONSENT = """
INSERT INTO shopper_partner_consents (shopper_id, partner_id, granted)
SELECT $1, p.id, $3 FROM partners p WHERE p.id = $2
ON CONFLICT (shopper_id, partner_id) DO UPDATE SET granted = EXCLUDED.granted, updated_at = now()
RETURNING granted, updated_at
"""

CONSENTED_PARTNER_IDS = """
SELECT partner_id FROM shopper_partner_consents
WHERE shopper_id = $1 AND granted
ORDER BY partner_id
"""

DELETE_PARTNER_CONSENTS = "DELETE FROM shopper_partner_consents WHERE shopper_id = $1"
