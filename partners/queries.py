"""The partners package's SQL, in one place."""

INSERT_PARTNER = """
INSERT INTO partners (slug, name, rate_limit_per_s, created_by) VALUES ($1, $2, $3, $4)
ON CONFLICT (slug) DO NOTHING
RETURNING id
"""

PARTNER = """
SELECT id, slug, name, rate_limit_per_s, created_at FROM partners WHERE id = $1
"""

# Versions are numbered per partner; the (partner_id, version) key makes a concurrent
# second writer fail instead of silently sharing a number.
INSERT_PRICING_VERSION = """
INSERT INTO partner_pricing_versions (
    partner_id, version, effective_at, issue_price_micros, redemption_price_micros,
    earn_points, earn_spend_minor, created_by)
SELECT $1, coalesce(max(version), 0) + 1, coalesce($2, now()), $3, $4, $5, $6, $7
FROM partner_pricing_versions WHERE partner_id = $1
RETURNING version
"""

PRICING_VERSIONS = """
SELECT version, effective_at, issue_price_micros, redemption_price_micros, earn_points,
       earn_spend_minor
FROM partner_pricing_versions WHERE partner_id = $1 ORDER BY version
"""

# The version already starting at the moment a new one would (NULL: now, as the insert reads it).
PRICING_STARTING_AT = """
SELECT version FROM partner_pricing_versions
WHERE partner_id = $1 AND effective_at = coalesce($2, now())
"""

PRICING_IN_EFFECT = """
SELECT version, effective_at, issue_price_micros, redemption_price_micros, earn_points,
       earn_spend_minor
FROM partner_pricing_versions
WHERE partner_id = $1 AND effective_at <= now()
ORDER BY effective_at DESC
LIMIT 1
"""

PRICING_VERSION = """
SELECT version, effective_at, issue_price_micros, redemption_price_micros, earn_points,
       earn_spend_minor
FROM partner_pricing_versions WHERE partner_id = $1 AND version = $2
"""

# The partner row is locked so that two concurrent key creations count each other.
LOCK_PARTNER = "SELECT id FROM partners WHERE id = $1 FOR UPDATE"

# The limit before and after, in one statement (the row locked by the UPDATE).
SET_RATE_LIMIT = """
WITH before AS (SELECT rate_limit_per_s FROM partners WHERE id = $1 FOR UPDATE)
UPDATE partners p SET rate_limit_per_s = $2 FROM before
WHERE p.id = $1
RETURNING before.rate_limit_per_s AS before_per_s
"""

ACTIVE_KEY_COUNT = """
SELECT count(*) FROM partner_api_keys WHERE partner_id = $1 AND revoked_at IS NULL
"""

INSERT_KEY = """
INSERT INTO partner_api_keys (key_id, partner_id, secret_sealed, created_by)
VALUES ($1, $2, $3, $4)
RETURNING created_at
"""

REVOKE_KEY = """
UPDATE partner_api_keys
SET revoked_at = coalesce(revoked_at, now()), revoked_by = coalesce(revoked_by, $3)
WHERE key_id = $1 AND partner_id = $2
RETURNING key_id, partner_id, created_at, revoked_at
"""

KEY_FOR_SIGNATURE = """
SELECT k.key_id, k.partner_id, k.secret_sealed, k.revoked_at, p.slug, p.rate_limit_per_s
FROM partner_api_keys k JOIN partners p ON p.id = k.partner_id
WHERE k.key_id = $1
"""

# ON CONFLICT DO NOTHING: a taken partner_ref returns no row instead of aborting.
INSERT_TRANSACTION = """
INSERT INTO partner_transactions (
    id, partner_id, partner_ref, kind, status, shopper_id, card_number, points, amount_minor,
    value_minor, pricing_version, original_id, ledger_entry_id, ledger_hold_id, expires_at,
    idempotency_key, network_points, network_entry_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
ON CONFLICT (partner_id, partner_ref) DO NOTHING
RETURNING created_at
"""

_TRANSACTION_COLUMNS = """
id, partner_id, partner_ref, kind, status, shopper_id, card_number, points, points_captured,
amount_minor, value_minor, pricing_version, original_id, ledger_entry_id, ledger_hold_id,
expires_at, created_at, network_points, network_entry_id
"""

TRANSACTION = f"""
SELECT {_TRANSACTION_COLUMNS} FROM partner_transactions WHERE id = $1 AND partner_id = $2
"""

TRANSACTION_FOR_UPDATE = TRANSACTION + " FOR UPDATE"

TRANSACTION_BY_REF_FOR_UPDATE = f"""
SELECT {_TRANSACTION_COLUMNS} FROM partner_transactions
WHERE partner_id = $1 AND partner_ref = $2
FOR UPDATE
"""

REFUNDED_SO_FAR = """
SELECT coalesce(sum(points), 0)::bigint       AS points,
       coalesce(sum(amount_minor), 0)::bigint AS amount_minor,
       coalesce(sum(network_points), 0)::bigint AS network_points
FROM partner_transactions WHERE original_id = $1 AND kind = 'refund'
"""

SETTLE_HOLD = """
UPDATE partner_transactions
SET status = $3, points_captured = $4, value_minor = $5, ledger_entry_id = $6
WHERE id = $1 AND partner_id = $2
"""

REF_TAKEN = "SELECT 1 FROM partner_transactions WHERE partner_id = $1 AND partner_ref = $2"


# Keyset pagination, newest first: (created_at, id) strictly below the cursor.
TRANSACTIONS_PAGE = f"""
SELECT {_TRANSACTION_COLUMNS} FROM partner_transactions
WHERE partner_id = $1
  AND ($2::timestamptz IS NULL OR (created_at, id) < ($2::timestamptz, $3::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $4
"""


# ---- earn rules ------------------------------------------------------------------------------

EARN_RULES = """
SELECT min_basket_minor, updated_at FROM partner_earn_rules WHERE partner_id = $1
"""

EARN_CATEGORIES = """
SELECT category, multiplier_bps, excluded FROM partner_earn_categories
WHERE partner_id = $1 ORDER BY category
"""

UPSERT_EARN_RULES = """
INSERT INTO partner_earn_rules (partner_id, min_basket_minor, updated_by) VALUES ($1, $2, $3)
ON CONFLICT (partner_id) DO UPDATE
SET min_basket_minor = EXCLUDED.min_basket_minor, updated_by = EXCLUDED.updated_by,
    updated_at = now()
"""

DELETE_EARN_CATEGORIES = "DELETE FROM partner_earn_categories WHERE partner_id = $1"

INSERT_EARN_CATEGORIES = """
INSERT INTO partner_earn_categories (partner_id, category, multiplier_bps, excluded)
SELECT $1, c, m, e FROM unnest($2::text[], $3::int[], $4::bool[]) AS t (c, m, e)
"""

# ---- purchase: lines, breakdown, facts about the shopper -------------------------------------

FIRST_PURCHASE_AT = """
SELECT NOT EXISTS (
    SELECT 1 FROM partner_transactions
    WHERE partner_id = $1 AND shopper_id = $2 AND kind = 'purchase')
"""

PARTNERS_PURCHASED_AT = """
SELECT DISTINCT partner_id FROM partner_transactions WHERE shopper_id = $1 AND kind = 'purchase'
"""

# The benefit of the shopper's active paid membership at $2 (no row: none); see
# partners/membership. PURCHASE_CONTEXT reads the same columns.
MEMBERSHIP_BENEFIT = """
SELECT mp.earn_multiplier_bps, mp.tier_floor FROM memberships m
JOIN membership_plans mp ON mp.id = m.plan_id
WHERE m.shopper_id = $1 AND m.status = 'active' AND m.period_end > $2
"""

SHOPPER_FACTS = """
SELECT s.birth_date,
       (SELECT time_zone FROM network_settings) AS time_zone,
       coalesce((SELECT array_agg(segment ORDER BY segment) FROM shopper_segments
                 WHERE shopper_id = s.id), '{}') AS segments
FROM shoppers s WHERE s.id = $1
"""

# ---- campaigns -------------------------------------------------------------------------------

_CAMPAIGN_COLUMNS = """
id, partner_id, name, starts_at, ends_at, segment, tier, category, basket_min_minor,
first_purchase, birthday_month, days_of_week, multiplier_bps, bonus_points, budget_points,
awarded_points, per_shopper_cap_points, ended_at, created_at
"""

INSERT_CAMPAIGN = f"""
INSERT INTO campaigns (partner_id, name, starts_at, ends_at, segment, tier, category,
    basket_min_minor, first_purchase, birthday_month, days_of_week, multiplier_bps, bonus_points,
    budget_points, per_shopper_cap_points, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
RETURNING {_CAMPAIGN_COLUMNS}
"""

# `partner_id IS NOT DISTINCT FROM`: NULL addresses the network's own campaigns.
CAMPAIGN = f"""
SELECT {_CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1 AND partner_id IS NOT DISTINCT FROM $2
"""

END_CAMPAIGN = f"""
UPDATE campaigns SET ended_at = coalesce(ended_at, now())
WHERE id = $1 AND partner_id IS NOT DISTINCT FROM $2
RETURNING {_CAMPAIGN_COLUMNS}
"""

# Keyset pagination, newest first.
CAMPAIGNS_PAGE = f"""
SELECT {_CAMPAIGN_COLUMNS} FROM campaigns
WHERE partner_id IS NOT DISTINCT FROM $1 AND ($2::bigint IS NULL OR id < $2)
ORDER BY id DESC LIMIT $3
"""

# Campaigns that may reward a purchase at partner $1 now: its own and the network's.
CAMPAIGNS_RUNNING_AT = f"""
SELECT {_CAMPAIGN_COLUMNS} FROM campaigns
WHERE (partner_id = $1 OR partner_id IS NULL)
  AND ended_at IS NULL AND starts_at <= $2 AND ends_at > $2 AND awarded_points < budget_points
ORDER BY id LIMIT $3
"""

# Campaigns a shopper may see as offers: the network's and, when $1 is set, that partner's,
# else every partner's.
CAMPAIGNS_RUNNING_FOR_OFFERS = f"""
SELECT {_CAMPAIGN_COLUMNS} FROM campaigns
WHERE ($1::bigint IS NULL OR partner_id = $1 OR partner_id IS NULL)
  AND ended_at IS NULL AND starts_at <= $2 AND ends_at > $2 AND awarded_points < budget_points
ORDER BY id LIMIT $3
"""

# A campaign's budget per UTC day (partners/campaign_burn_down.py), one statement: awards are
# dated by their purchase, budget returns by their refund (partner_transactions.created_at).
# Activity before the first day counts on the first day; the series stops at $3 (today).
# `net_awarded` is over all activity, to check it against campaigns.awarded_points (0181).
CAMPAIGN_BURN_DOWN = """
WITH c AS (
    SELECT id, budget_points, awarded_points, starts_at,
           least(ends_at, coalesce(ended_at, ends_at)) AS stops_at
    FROM campaigns WHERE id = $1 AND partner_id IS NOT DISTINCT FROM $2
), span AS (
    SELECT (starts_at AT TIME ZONE 'UTC')::date AS first_day,
           least(((stops_at - interval '1 microsecond') AT TIME ZONE 'UTC')::date, $3::date)
               AS last_day
    FROM c
), moves AS (
    SELECT (t.created_at AT TIME ZONE 'UTC')::date AS day, b.points AS awarded,
           0::bigint AS returned
    FROM purchase_breakdown b JOIN partner_transactions t ON t.id = b.transaction_id
    WHERE b.campaign_id = $1 AND b.kind = 'campaign'
    UNION ALL
    SELECT (t.created_at AT TIME ZONE 'UTC')::date, 0::bigint, r.points
    FROM campaign_budget_returns r JOIN partner_transactions t ON t.id = r.refund_id
    WHERE r.campaign_id = $1
), per_day AS (
    SELECT greatest(m.day, s.first_day) AS day, sum(m.awarded)::bigint AS awarded,
           sum(m.returned)::bigint AS returned
    FROM moves m CROSS JOIN span s WHERE m.day <= s.last_day
    GROUP BY 1
), days AS (
    SELECT g.d::date AS day, coalesce(p.awarded, 0) AS awarded, coalesce(p.returned, 0) AS returned
    FROM span s
    CROSS JOIN generate_series(s.first_day, s.last_day, interval '1 day') AS g (d)
    LEFT JOIN per_day p ON p.day = g.d::date
)
SELECT c.id, c.budget_points, c.awarded_points, c.starts_at, c.stops_at,
       (SELECT coalesce(sum(awarded) - sum(returned), 0) FROM moves)::bigint AS net_awarded,
       d.day, d.awarded, d.returned,
       (c.budget_points - sum(d.awarded - d.returned) OVER (ORDER BY d.day))::bigint AS left_points
FROM c LEFT JOIN days d ON true
ORDER BY d.day
"""

SHOPPER_AWARDS = """
SELECT campaign_id, points FROM campaign_shopper_awards
WHERE shopper_id = $1 AND campaign_id = ANY($2::bigint[])
"""

# The one statement of an award: cut to what is left of the cap and the budget (migration 0050).
CAMPAIGN_AWARD = "SELECT campaign_award($1, $2, $3)"

NETWORK_TIME_ZONE = "SELECT time_zone FROM network_settings"

# ---- purchase: what a purchase reads before it writes, in one statement ----------------------

# Every read `purchase.purchase` needs before its first write, in one round trip (it was 12):
# the network's currency, time zone and points lifetime; the card; the pricing version in effect
# (`now()` is the transaction's start, as in PRICING_IN_EFFECT); whether partner_ref is taken
# (REF_TAKEN); the earn rules (EARN_RULES, EARN_CATEGORIES); the running campaigns
# (CAMPAIGNS_RUNNING_AT, at $4); the shopper's tier, birth date and segments (TIER_OF,
# SHOPPER_FACTS); the benefit of an active paid membership (earn multiplier, tier floor:
# partners/membership); whether a referral of the shopper still waits for its reward; and the
# partners the shopper has bought at (PARTNERS_PURCHASED_AT), read only when a running campaign
# has a first-purchase condition, the only rule that looks at it. The expiry is EXPIRES_AT's
# expression (shoppers/queries.py) at $4. Parts about the shopper are NULL when the card is
# unknown; the caller checks the parts in the order the purchase's errors are defined.
# network_settings has one row; LIMIT 1 tells the planner so (unanalyzed, it guesses ~900 rows
# and may then hash a correlated subquery over a whole table instead of probing its key).
PURCHASE_CONTEXT = f"""
WITH card AS (
    SELECT shopper_id, status FROM shopper_cards WHERE card_number = $2::text
), pricing AS (
    SELECT version, issue_price_micros, redemption_price_micros, earn_points, earn_spend_minor
    FROM partner_pricing_versions
    WHERE partner_id = $1::bigint AND effective_at <= now()
    ORDER BY effective_at DESC
    LIMIT 1
), running AS (
    SELECT {_CAMPAIGN_COLUMNS} FROM campaigns
    WHERE (partner_id = $1::bigint OR partner_id IS NULL)
      AND ended_at IS NULL AND starts_at <= $4::timestamptz AND ends_at > $4::timestamptz
      AND awarded_points < budget_points
    ORDER BY id LIMIT $5::int
)
SELECT ns.currency::text AS currency,
       ns.time_zone,
       $4::timestamptz + make_interval(months => ns.points_lifetime_months) AS expires_at,
       c.shopper_id,
       c.status AS card_status,
       p.version AS pricing_version, p.issue_price_micros, p.redemption_price_micros,
       p.earn_points, p.earn_spend_minor,
       EXISTS (SELECT 1 FROM partner_transactions
               WHERE partner_id = $1::bigint AND partner_ref = $3::text) AS ref_taken,
       coalesce(r.min_basket_minor, 0) AS min_basket_minor,
       ARRAY(SELECT category FROM partner_earn_categories
             WHERE partner_id = $1::bigint ORDER BY category) AS categories,
       ARRAY(SELECT multiplier_bps FROM partner_earn_categories
             WHERE partner_id = $1::bigint ORDER BY category) AS category_multipliers_bps,
       ARRAY(SELECT excluded FROM partner_earn_categories
             WHERE partner_id = $1::bigint ORDER BY category) AS categories_excluded,
       (SELECT json_agg(json_build_object(
                   'id', id, 'partner_id', partner_id, 'name', name, 'segment', segment,
                   'tier', tier, 'category', category, 'basket_min_minor', basket_min_minor,
                   'first_purchase', first_purchase, 'birthday_month', birthday_month,
                   'days_of_week', days_of_week, 'multiplier_bps', multiplier_bps,
                   'bonus_points', bonus_points, 'budget_points', budget_points,
                   'awarded_points', awarded_points,
                   'per_shopper_cap_points', per_shopper_cap_points) ORDER BY id)
        FROM running) AS running_campaigns,
       (SELECT tier FROM shopper_tiers WHERE shopper_id = c.shopper_id) AS tier,
       (SELECT mp.earn_multiplier_bps FROM memberships m
        JOIN membership_plans mp ON mp.id = m.plan_id
        WHERE m.shopper_id = c.shopper_id AND m.status = 'active'
          AND m.period_end > $4::timestamptz) AS membership_multiplier_bps,
       (SELECT mp.tier_floor FROM memberships m
        JOIN membership_plans mp ON mp.id = m.plan_id
        WHERE m.shopper_id = c.shopper_id AND m.status = 'active'
          AND m.period_end > $4::timestamptz) AS membership_tier_floor,
       (SELECT birth_date FROM shoppers WHERE id = c.shopper_id) AS birth_date,
       ARRAY(SELECT segment FROM shopper_segments
             WHERE shopper_id = c.shopper_id ORDER BY segment) AS segments,
       EXISTS (SELECT 1 FROM referrals
               WHERE referred_shopper_id = c.shopper_id AND rewarded_at IS NULL)
           AS referral_pending,
       CASE WHEN EXISTS (SELECT 1 FROM running WHERE first_purchase) THEN
           ARRAY(SELECT DISTINCT partner_id FROM partner_transactions
                 WHERE shopper_id = c.shopper_id AND kind = 'purchase')
       END AS purchased_at
FROM (SELECT currency, time_zone, points_lifetime_months FROM network_settings LIMIT 1) ns
LEFT JOIN card c ON true
LEFT JOIN pricing p ON true
LEFT JOIN partner_earn_rules r ON r.partner_id = $1::bigint
"""


def _per_triple(single: str) -> str:
    """`single`, a read of one ($1::bigint partner, $2::text card, $3::text partner_ref), made
    a read of many: the arrays $1, $2, $3, one row per triple in array order, with `n` its
    position from 1."""
    assert single.count("$2::text") == 1, "the card, once"
    assert single.count("$3::text") == 1, "the partner_ref, once"
    assert single.count("$1") == single.count("$1::bigint"), "the partner"
    return f"""
SELECT u.n::integer AS n, ctx.*
FROM unnest($1::bigint[], $2::text[], $3::text[]) WITH ORDINALITY
     AS u (partner_id, card_number, partner_ref, n)
CROSS JOIN LATERAL ({
        single.replace("$1::bigint", "u.partner_id")
        .replace("$2::text", "u.card_number")
        .replace("$3::text", "u.partner_ref")
    }) AS ctx
ORDER BY u.n
"""


# The same read for many purchases (a batch, a group commit's purchases): PURCHASE_CONTEXT
# itself, per (partner, card, partner_ref).
PURCHASE_CONTEXT_MANY = _per_triple(PURCHASE_CONTEXT)

# ---- redemption, hold, capture: one read, one write (migration 0094) -------------------------

# What a redemption or a hold reads before it writes: the card, the pricing in effect, whether
# the ref is taken, the network currency; checked in that order (partners.burns.burn_context_of).
BURN_CONTEXT = """
SELECT ns.currency::text AS currency,
       c.shopper_id, c.status AS card_status,
       p.version AS pricing_version, p.issue_price_micros, p.redemption_price_micros,
       p.earn_points, p.earn_spend_minor,
       EXISTS (SELECT 1 FROM partner_transactions
               WHERE partner_id = $1::bigint AND partner_ref = $3::text) AS ref_taken
FROM (SELECT currency FROM network_settings LIMIT 1) ns
LEFT JOIN shopper_cards c ON c.card_number = $2::text
LEFT JOIN LATERAL (
    SELECT version, issue_price_micros, redemption_price_micros, earn_points, earn_spend_minor
    FROM partner_pricing_versions
    WHERE partner_id = $1::bigint AND effective_at <= now()
    ORDER BY effective_at DESC
    LIMIT 1
) p ON true
"""

# What a capture reads: the hold's row, locked (TRANSACTION_FOR_UPDATE's), the pricing in
# effect, the network currency. No row: no such transaction of this partner.
CAPTURE_CONTEXT = f"""
SELECT t.*, ns.currency::text AS currency,
       p.version AS pricing_in_effect, p.issue_price_micros, p.redemption_price_micros,
       p.earn_points, p.earn_spend_minor
FROM (SELECT {_TRANSACTION_COLUMNS} FROM partner_transactions
      WHERE id = $1 AND partner_id = $2 FOR UPDATE) t
CROSS JOIN (SELECT currency FROM network_settings LIMIT 1) ns
LEFT JOIN LATERAL (
    SELECT version, issue_price_micros, redemption_price_micros, earn_points, earn_spend_minor
    FROM partner_pricing_versions
    WHERE partner_id = $2 AND effective_at <= now()
    ORDER BY effective_at DESC
    LIMIT 1
) p ON true
"""

REDEEM_WRITE = """
SELECT burn, recorded
FROM partner_redeem_write($1::uuid, $2::bigint, $3::text, $4::bigint, $5::text, $6::bigint,
                          $7::bigint, $8::integer, $9::text, $10::text, $11::bigint,
                          $12::jsonb, $13::jsonb)
"""

HOLD_WRITE = """
SELECT hold, recorded
FROM partner_hold_write($1::uuid, $2::bigint, $3::text, $4::bigint, $5::text, $6::bigint,
                        $7::integer, $8::text, $9::text, $10::timestamptz, $11::jsonb)
"""

# ---- a group commit's redemptions and holds: one read, one write (migration 0098) -------------

# BURN_CONTEXT for many (partner, card, partner_ref) triples.
BURN_CONTEXT_MANY = _per_triple(BURN_CONTEXT)

# CAPTURE_CONTEXT for many (hold id, partner) pairs, a row each in array order (`n`, from 1), the
# holds locked in that order; a hold that is not the partner's answers a row of NULLs.
assert CAPTURE_CONTEXT.count("$1") == 1, "the hold, once"
CAPTURE_CONTEXT_MANY = f"""
SELECT u.n::integer AS n, ctx.*
FROM unnest($1::uuid[], $2::bigint[]) WITH ORDINALITY AS u (hold_id, partner_id, n)
LEFT JOIN LATERAL ({
    CAPTURE_CONTEXT.replace("$1", "u.hold_id").replace("$2", "u.partner_id")
}) AS ctx ON true
ORDER BY u.n
"""

# The shoppers whose wallets to lock first (sorted), then REDEEM_WRITE's, HOLD_WRITE's and
# CAPTURE_WRITE's arguments as arrays, the three kinds' in one list, one element per item (NULL
# where the item's kind takes no such argument); a row per item.
BURN_WRITE_MANY = """
SELECT n, written, refused
FROM partner_burn_write_many($1::bigint[], $2::text[], $3::uuid[], $4::bigint[], $5::text[],
                             $6::bigint[], $7::text[], $8::bigint[], $9::bigint[], $10::integer[],
                             $11::text[], $12::text[], $13::bigint[], $14::timestamptz[],
                             $15::jsonb[], $16::jsonb[], $17::bigint[])
ORDER BY n
"""

CAPTURE_WRITE = """
SELECT capture
FROM partner_capture_write($1::uuid, $2::bigint, $3::text, $4::bigint, $5::bigint, $6::bigint,
                           $7::bigint, $8::jsonb)
"""

# ---- purchase: every write of a common purchase, in one statement ----------------------------

# `partner_purchase_write` (migration 0085): ledger.earn (partner-paid points), ledger.earn as a
# marketing-paid goodwill (network campaigns), the partner_transactions row, the lines and the
# breakdown, the tier qualification after them (`shopper_qualification_12m`, 0192), the tier row
# ensured and locked when an upper tier is qualified for (ENSURE_TIER_ROW, TIER_FOR_UPDATE), and
# the purchase.recorded event unless the tier goes up (then the caller changes it and records
# the event after) or $27 is NULL (a referral purchase: the caller records it after the reward).
PURCHASE_WRITE = """
SELECT earn, network, recorded, points_earned, spend_minor, tier, event_recorded
FROM partner_purchase_write(
    $1::uuid, $2::bigint, $3::text, $4::bigint, $5::text, $6::bigint, $7::integer, $8::text,
    $9::bigint, $10::timestamptz, $11::text, $12::bigint, $13::jsonb, $14::text, $15::bigint,
    $16::jsonb, $17::timestamptz, $18::text[], $19::bigint[], $20::text[], $21::bigint[],
    $22::bigint[], $23::text[], $24::text[], $25::bigint[], $26::bigint[], $27::jsonb)
"""

# The referral reward's breakdown item, after the items `PURCHASE_WRITE` stored: $2 its item_no.
APPEND_BREAKDOWN_ITEM = """
INSERT INTO purchase_breakdown (transaction_id, item_no, shopper_id, kind, points, campaign_id,
                                paid_by)
VALUES ($1::uuid, $2::integer, $3::bigint, $4::text, $5::bigint, $6::bigint, $7::text)
"""

# `partner_purchase_write_many` (migration 0093): the writes of many plain purchases
# (partner-paid points only, one item per shopper), set-based; see partners.purchase_many.
# Through 0096's wrapper: in a subtransaction of its own, a refusal answered as a row.
PURCHASE_WRITE_MANY = """
SELECT n, written, balance_after, points_earned, spend_minor, tier, event_recorded, refused
FROM partner_purchase_write_many_or_refused(
    $1::timestamptz, $2::bigint[], $3::uuid[], $4::bigint[], $5::text[], $6::bigint[],
    $7::text[], $8::bigint[], $9::integer[], $10::bigint[], $11::timestamptz[], $12::text[],
    $13::text[], $14::bigint[], $15::jsonb[], $16::jsonb[], $17::integer[], $18::text[],
    $19::bigint[], $20::integer[], $21::text[], $22::bigint[], $23::bigint[], $24::text[],
    $25::text[], $26::bigint[], $27::bigint[])
"""
