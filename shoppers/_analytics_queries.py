"""The SQL of aggregates, segments, profiles, insights and operator analytics, in one place.

Analytics read the ledger's tables directly (lots, consumption, postings) because the flow
matrix and breakage are properties of lot consumption that no ledger call summarizes; they only
read, and never inside a request that writes.
"""

# Aggregates --------------------------------------------------------------------------------------

AGGREGATES_FOLD = "SELECT aggregates_fold($1)"

# The oldest unfolded delta by queue order (its age is the lag), and a bounded queue count.
AGGREGATES_LAG = """
SELECT coalesce(extract(epoch FROM now() - (SELECT enqueued_at FROM aggregate_delta
                                           ORDER BY delta_id LIMIT 1)), 0)::float8 AS lag_s,
       (SELECT count(*) FROM (SELECT 1 FROM aggregate_delta LIMIT 1000000) queued) AS queued
"""

# Erasure and merge (0075_aggregates_erasure_merge.sql): both wait for the folder's lock.
AGGREGATES_ERASE = "SELECT shopper_aggregates_erase($1)"

AGGREGATES_MERGE = "SELECT shopper_aggregates_merge($1, $2)"

SHOPPER_STATS = """
SELECT shopper_id, spend_minor, visits, first_purchase_at, last_purchase_at, points_earned,
       points_burned, partners_visited, favourite_partner_id, favourite_category
FROM shopper_stats WHERE shopper_id = $1
"""

# Segments ----------------------------------------------------------------------------------------

SEGMENTS_LOCK = "SELECT pg_try_advisory_xact_lock(hashtext('coalition.segments_refresh'))"

SEGMENTS_DUE = """
SELECT NOT EXISTS (SELECT 1 FROM segment_refreshes
                   WHERE as_of > $1::timestamptz - make_interval(secs => $2))
"""

SEGMENTS_REFRESH = "SELECT segments_refresh($1)"

SEGMENTS_OF = """
SELECT segment FROM shopper_segments WHERE shopper_id = $1 ORDER BY segment LIMIT $2
"""

# Profile -----------------------------------------------------------------------------------------

DATA_SHARING = """
SELECT coalesce((SELECT c.data_sharing FROM shopper_consents c
                 JOIN shoppers s ON s.id = c.shopper_id
                 WHERE c.shopper_id = $1 AND s.erased_at IS NULL), false)
"""

# A category the shopper buys at other partners and never at this one, by spend elsewhere.
NEXT_BEST_CATEGORY = """
SELECT c.category FROM shopper_category_stats c
WHERE c.shopper_id = $1 AND c.partner_id <> $2 AND c.spend_minor > 0
  AND NOT EXISTS (SELECT 1 FROM shopper_category_stats h
                  WHERE h.shopper_id = $1 AND h.partner_id = $2 AND h.category = c.category)
GROUP BY c.category
ORDER BY sum(c.spend_minor) DESC, c.category
LIMIT 1
"""

# Insights (a partner's own shoppers: at least one purchase there) ------------------------------

# Segment memberships are derived across partners: consent is checked again at read time, so a
# withdrawal counts at once even before the next refresh removes the memberships.
INSIGHT_SEGMENT_SIZES = """
SELECT seg.segment, count(*) AS shoppers
FROM shopper_partner_stats p
JOIN shopper_segments seg ON seg.shopper_id = p.shopper_id
JOIN shoppers s ON s.id = p.shopper_id AND s.erased_at IS NULL
WHERE p.partner_id = $1 AND p.visits > 0
  AND (seg.segment = 'birthday_month'
       OR EXISTS (SELECT 1 FROM shopper_consents c
                  WHERE c.shopper_id = p.shopper_id AND c.data_sharing))
GROUP BY seg.segment
ORDER BY seg.segment
"""

INSIGHT_COHORTS = """
WITH firsts AS (
    SELECT shopper_id, min(month) AS cohort
    FROM shopper_partner_months WHERE partner_id = $1
    GROUP BY shopper_id
), activity AS (
    SELECT f.cohort,
           ((extract(year FROM m.month) * 12 + extract(month FROM m.month))
            - (extract(year FROM f.cohort) * 12 + extract(month FROM f.cohort)))::integer
               AS offset_m
    FROM firsts f
    JOIN shopper_partner_months m ON m.partner_id = $1 AND m.shopper_id = f.shopper_id
    WHERE f.cohort >= $2
)
SELECT cohort, offset_m, count(*) AS shoppers
FROM activity WHERE offset_m < $3
GROUP BY cohort, offset_m
ORDER BY cohort, offset_m
"""

INSIGHT_CONSENTING_BASE = """
SELECT count(*) FROM shopper_partner_stats p
JOIN shopper_consents c ON c.shopper_id = p.shopper_id AND c.data_sharing
JOIN shoppers s ON s.id = p.shopper_id AND s.erased_at IS NULL
WHERE p.partner_id = $1 AND p.visits > 0
"""

INSIGHT_ACTIVE_ELSEWHERE = """
SELECT count(*) FROM shopper_partner_stats p
JOIN shopper_consents c ON c.shopper_id = p.shopper_id AND c.data_sharing
JOIN shoppers s ON s.id = p.shopper_id AND s.erased_at IS NULL
WHERE p.partner_id = $1 AND p.visits > 0
  AND EXISTS (SELECT 1 FROM shopper_partner_stats o
              WHERE o.shopper_id = p.shopper_id AND o.partner_id <> $1
                AND o.last_purchase_at >= $2)
"""

INSIGHT_CATEGORIES_ELSEWHERE = """
SELECT cs.category, count(DISTINCT cs.shopper_id) AS shoppers
FROM shopper_partner_stats p
JOIN shopper_consents c ON c.shopper_id = p.shopper_id AND c.data_sharing
JOIN shoppers s ON s.id = p.shopper_id AND s.erased_at IS NULL
JOIN shopper_category_stats cs
  ON cs.shopper_id = p.shopper_id AND cs.partner_id <> $1 AND cs.last_line_at >= $2
WHERE p.partner_id = $1 AND p.visits > 0
GROUP BY cs.category
ORDER BY shoppers DESC, cs.category
LIMIT $3
"""

# Operator analytics ------------------------------------------------------------------------------

RETENTION = """
WITH firsts AS (
    SELECT shopper_id, min(created_at) AS first_at
    FROM partner_transactions
    WHERE kind = 'purchase' AND created_at < $2
    GROUP BY shopper_id
), active AS (
    SELECT DISTINCT shopper_id FROM partner_transactions
    WHERE kind = 'purchase' AND created_at >= $1 AND created_at < $2
)
SELECT (SELECT count(*) FROM firsts WHERE first_at < $1) AS at_start,
       (SELECT count(*) FROM active) AS at_end,
       (SELECT count(*) FROM firsts WHERE first_at >= $1) AS new_in_period
"""

REPEAT_PURCHASE = """
SELECT count(*) AS purchasers, count(*) FILTER (WHERE purchases >= 2) AS repeat_purchasers
FROM (SELECT shopper_id, count(*) AS purchases FROM partner_transactions
      WHERE kind = 'purchase' AND created_at >= $1 AND created_at < $2
      GROUP BY shopper_id) per_shopper
"""

AVERAGE_BASKET = """
SELECT partner_id, count(*) AS purchases, coalesce(sum(amount_minor), 0)::bigint AS spend_minor
FROM partner_transactions
WHERE kind = 'purchase' AND created_at >= $1 AND created_at < $2
GROUP BY ROLLUP (partner_id)
ORDER BY partner_id NULLS FIRST
"""

NPS = """
SELECT count(*) AS responses,
       count(*) FILTER (WHERE score >= 9) AS promoters,
       count(*) FILTER (WHERE score BETWEEN 7 AND 8) AS passives,
       count(*) FILTER (WHERE score <= 6) AS detractors
FROM nps_answers
WHERE answered_at >= $1 AND answered_at < $2
"""

# PTS postings to network:points_issued by entry kind (and partner): negative issues points,
# positive takes them out of circulation (burn, expiry, refunds of earns).
POINTS_BY_KIND = """
SELECT e.kind, coalesce(sum(p.amount), 0)::bigint AS amount
FROM ledger.posting p
JOIN ledger.entry e ON e.entry_id = p.entry_id
WHERE p.account_id = (SELECT account_id FROM ledger.account WHERE name = 'network:points_issued')
  AND e.created_at >= $1 AND e.created_at < $2
GROUP BY e.kind
"""

POINTS_BY_PARTNER = """
SELECT e.partner_id,
       coalesce(-sum(p.amount) FILTER (WHERE e.kind IN ('earn', 'goodwill')), 0)::bigint
           AS points_issued,
       coalesce(sum(p.amount) FILTER (WHERE e.kind IN ('burn', 'capture')), 0)::bigint
           AS points_redeemed,
       coalesce(sum(p.amount) FILTER (WHERE e.kind IN ('refund_earn', 'goodwill_debit')), 0)::bigint
           AS points_issued_reversed,
       coalesce(-sum(p.amount) FILTER (WHERE e.kind = 'refund_burn'), 0)::bigint
           AS points_redeemed_reversed
FROM ledger.posting p
JOIN ledger.entry e ON e.entry_id = p.entry_id
WHERE p.account_id = (SELECT account_id FROM ledger.account WHERE name = 'network:points_issued')
  AND e.created_at >= $1 AND e.created_at < $2
  AND e.partner_id IS NOT NULL
GROUP BY e.partner_id
ORDER BY e.partner_id
"""

# The same net figures per UTC day over [$1, $1 + $2 days), every day present (zero when quiet).
POINTS_BY_DAY = """
WITH days AS (
    SELECT generate_series(0, $2::int - 1) AS n
), per_day AS (
    SELECT floor(extract(epoch FROM e.created_at - $1) / 86400)::int AS n,
           coalesce(-sum(p.amount) FILTER (WHERE e.kind IN ('earn', 'goodwill')), 0)
         - coalesce(sum(p.amount) FILTER (WHERE e.kind IN ('refund_earn', 'goodwill_debit')), 0)
               AS issued,
           coalesce(sum(p.amount) FILTER (WHERE e.kind IN ('burn', 'capture')), 0)
         - coalesce(-sum(p.amount) FILTER (WHERE e.kind = 'refund_burn'), 0)
               AS redeemed
    FROM ledger.posting p
    JOIN ledger.entry e ON e.entry_id = p.entry_id
    WHERE p.account_id = (
              SELECT account_id FROM ledger.account WHERE name = 'network:points_issued')
      AND e.created_at >= $1 AND e.created_at < $1 + make_interval(days => $2::int)
      AND e.partner_id IS NOT NULL
    GROUP BY 1
)
SELECT d.n, coalesce(x.issued, 0)::bigint AS issued, coalesce(x.redeemed, 0)::bigint AS redeemed
FROM days d LEFT JOIN per_day x ON x.n = d.n
ORDER BY d.n
"""

# Points earned at A (the lot's issuing partner) and burned at B, net of refunded burns.
FLOW_MATRIX = """
SELECT l.partner_id AS earned_partner_id, e.partner_id AS burned_partner_id,
       sum(c.points - c.refunded)::bigint AS points,
       sum((c.points - c.refunded) * c.issue_price_micros)::bigint AS issue_value_micros
FROM ledger.consumption c
JOIN ledger.entry e ON e.entry_id = c.entry_id
JOIN ledger.lot l ON l.shopper_id = c.shopper_id AND l.lot_id = c.lot_id
WHERE e.kind IN ('burn', 'capture') AND e.created_at >= $1 AND e.created_at < $2
GROUP BY 1, 2
HAVING sum(c.points - c.refunded) > 0
ORDER BY 1 NULLS FIRST, 2
LIMIT $3
"""

# Retention figures (issue 19): CRR per partner, CLV per segment, ABC x XYZ ------------------------

# Per partner, its customers: S first bought there before $1, N first bought there in [$1, $2),
# E bought there in [$1, $2). $3: one partner, or NULL for every partner.
RETENTION_BY_PARTNER = """
SELECT partner_id,
       count(*) FILTER (WHERE first_at < $1) AS at_start,
       count(*) FILTER (WHERE active) AS at_end,
       count(*) FILTER (WHERE first_at >= $1) AS new_in_period
FROM (SELECT partner_id, shopper_id, min(created_at) AS first_at,
             bool_or(created_at >= $1) AS active
      FROM partner_transactions
      WHERE kind = 'purchase' AND created_at < $2 AND ($3::bigint IS NULL OR partner_id = $3)
      GROUP BY partner_id, shopper_id) customers
GROUP BY partner_id
ORDER BY partner_id
"""

# Per segment (and 'all'), the CRR inputs and the period's purchases and spend of its members.
# $3: one partner's purchases only (NULL: the network's); $4: count only shoppers who consented
# to data sharing (a partner's view of network segments).
LIFETIME_VALUE = """
WITH per_shopper AS (
    SELECT t.shopper_id, min(t.created_at) AS first_at, bool_or(t.created_at >= $1) AS active,
           count(*) FILTER (WHERE t.created_at >= $1) AS purchases,
           coalesce(sum(t.amount_minor) FILTER (WHERE t.created_at >= $1), 0) AS spend_minor
    FROM partner_transactions t
    JOIN shoppers s ON s.id = t.shopper_id AND s.erased_at IS NULL
    WHERE t.kind = 'purchase' AND t.created_at < $2 AND ($3::bigint IS NULL OR t.partner_id = $3)
      AND (NOT $4::boolean OR EXISTS (SELECT 1 FROM shopper_consents c
                                      WHERE c.shopper_id = t.shopper_id AND c.data_sharing))
    GROUP BY t.shopper_id
), members AS (
    SELECT 'all' AS segment, shopper_id FROM per_shopper
    UNION ALL
    SELECT seg.segment, seg.shopper_id FROM shopper_segments seg
    WHERE seg.shopper_id IN (SELECT shopper_id FROM per_shopper)
)
SELECT m.segment,
       count(*) FILTER (WHERE p.first_at < $1) AS at_start,
       count(*) FILTER (WHERE p.active) AS at_end,
       count(*) FILTER (WHERE p.first_at >= $1) AS new_in_period,
       coalesce(sum(p.purchases), 0)::bigint AS purchases,
       coalesce(sum(p.spend_minor), 0)::bigint AS spend_minor
FROM members m JOIN per_shopper p USING (shopper_id)
GROUP BY m.segment
ORDER BY m.segment = 'all' DESC, m.segment
"""

# ABC by value (net spend in the period: purchases less their refunds), XYZ by regularity (the
# coefficient of variation of monthly spend over the UTC calendar months the period touches,
# months without spend counted as 0). With t the total, q the sum of squared monthly spends
# and n the months, CV^2 = (n*q - t^2) / t^2, compared exactly in integers: X when CV <= 10 %
# (100 (nq - t^2) <= t^2), Y when CV <= 25 % (16 (nq - t^2) <= t^2), else Z. A when the value
# ranked before the shopper is under 80 % of the total, B under 95 %, else C.
ABC_XYZ = """
WITH months AS (
    SELECT count(*) AS n FROM generate_series(
        date_trunc('month', $1::timestamptz AT TIME ZONE 'UTC'),
        date_trunc('month', ($2::timestamptz - interval '1 microsecond') AT TIME ZONE 'UTC'),
        interval '1 month')
), monthly AS (
    SELECT shopper_id, date_trunc('month', created_at AT TIME ZONE 'UTC') AS month,
           sum(CASE kind WHEN 'purchase' THEN amount_minor ELSE -amount_minor END)::numeric
               AS spend_minor
    FROM partner_transactions
    WHERE kind IN ('purchase', 'refund') AND amount_minor IS NOT NULL
      AND created_at >= $1 AND created_at < $2 AND ($3::bigint IS NULL OR partner_id = $3)
    GROUP BY shopper_id, month
), per_shopper AS (
    SELECT shopper_id, sum(spend_minor) AS total, sum(spend_minor * spend_minor) AS squares
    FROM monthly GROUP BY shopper_id HAVING sum(spend_minor) > 0
), ranked AS (
    SELECT total, squares,
           coalesce(sum(total) OVER (ORDER BY total DESC, shopper_id
                                     ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0)
               AS before,
           sum(total) OVER () AS grand
    FROM per_shopper
), classified AS (
    SELECT total,
           CASE WHEN 100 * before < 80 * grand THEN 'A'
                WHEN 100 * before < 95 * grand THEN 'B' ELSE 'C' END AS abc,
           CASE WHEN 100 * (n * squares - total * total) <= total * total THEN 'X'
                WHEN 16 * (n * squares - total * total) <= total * total THEN 'Y'
                ELSE 'Z' END AS xyz
    FROM ranked, months
)
SELECT abc, xyz, count(*) AS shoppers, sum(total)::bigint AS spend_minor
FROM classified
GROUP BY abc, xyz
ORDER BY abc, xyz
"""

PERIOD_MONTHS = """
SELECT count(*) FROM generate_series(
    date_trunc('month', $1::timestamptz AT TIME ZONE 'UTC'),
    date_trunc('month', ($2::timestamptz - interval '1 microsecond') AT TIME ZONE 'UTC'),
    interval '1 month')
"""
