-- aggregates_fold: the same fold as 0090, with each shopper's `shopper_stats` row written once
-- per batch instead of twice.
--
-- 0090 upserted the sums into `shopper_stats` in the fold's statement and then, in a second
-- statement (aggregates_recompute_favourites), updated the same rows again with
-- partners_visited and the favourites, which read the shopper x partner and category rows the
-- first statement wrote and so cannot run inside it. Every folded shopper cost two new versions
-- of its row (and, when the page had no room, two primary-key entries). Here the first
-- statement carries the per-shopper sums out in arrays, and the second upserts sums and
-- favourites together: the favourites read the same rows the recompute read (everything the
-- first statement wrote is visible to the second), so every column ends as before.
--
-- Shoppers of the batch with no transaction delta in it (only basket lines: a batch boundary can
-- fall between a purchase's lines and its transaction row) got no sums upsert in 0090, only the
-- recompute of a row that may not exist; they still get exactly that UPDATE. The result is the
-- same as 0090's for every queue: tests/integration/test_aggregates_fold_equivalence.py
-- compares it with 0075's function (0090 did the same) on the same queue.
--
-- fillfactor 90 on the two tables a fold updates most (a shopper's row and its shopper x
-- partner rows, one update per batch that has a purchase of theirs) leaves room on each page
-- for the new version, so most updates are HOT: no new index entries, less to vacuum. It
-- applies to pages written from now on.

ALTER TABLE shopper_stats SET (fillfactor = 90);
ALTER TABLE shopper_partner_stats SET (fillfactor = 90);

CREATE OR REPLACE FUNCTION aggregates_fold(p_batch_max integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_folded integer;
    v_shoppers bigint[];  -- every owner of the batch, sorted (the favourites' shoppers)
    v_ids bigint[];  -- owners with transaction deltas, sorted, and their sums below
    v_spend bigint[];
    v_visits integer[];
    v_first timestamptz[];
    v_last timestamptz[];
    v_earned bigint[];
    v_burned bigint[];
BEGIN
    IF NOT pg_try_advisory_xact_lock(aggregates_lock_key()) THEN
        RETURN 0;
    END IF;
    WITH taken AS (
        DELETE FROM aggregate_delta
        WHERE delta_id IN (SELECT delta_id FROM aggregate_delta
                           ORDER BY delta_id LIMIT p_batch_max FOR UPDATE SKIP LOCKED)
        RETURNING *
    ), owned AS (
        SELECT o.owner AS shopper_id, o.partner_id, o.category, o.occurred_at, o.spend_minor,
               o.visits, o.points_earned, o.points_burned
        FROM (SELECT t.*,
                     (SELECT coalesce(s.merged_into_id, s.id)
                      FROM shoppers s
                      LEFT JOIN shoppers survivor ON survivor.id = s.merged_into_id
                      WHERE s.id = t.shopper_id
                        AND s.erased_at IS NULL AND survivor.erased_at IS NULL) AS owner
              FROM taken t
              OFFSET 0) o  -- a fence: the subquery runs once per delta, not once per use
        WHERE o.owner IS NOT NULL
    ), tx AS (
        SELECT shopper_id, partner_id,
               sum(spend_minor)::bigint AS spend_minor, sum(visits)::integer AS visits,
               min(occurred_at) FILTER (WHERE visits > 0) AS first_at,
               max(occurred_at) FILTER (WHERE visits > 0) AS last_at,
               sum(points_earned)::bigint AS points_earned,
               sum(points_burned)::bigint AS points_burned
        FROM owned WHERE category IS NULL
        GROUP BY shopper_id, partner_id
    ), pair AS (
        INSERT INTO shopper_partner_stats AS s (shopper_id, partner_id, spend_minor, visits,
            first_purchase_at, last_purchase_at, points_earned, points_burned)
        SELECT shopper_id, partner_id, spend_minor, visits, first_at, last_at, points_earned,
               points_burned
        FROM tx ORDER BY shopper_id, partner_id
        ON CONFLICT (shopper_id, partner_id) DO UPDATE SET
            spend_minor = s.spend_minor + EXCLUDED.spend_minor,
            visits = s.visits + EXCLUDED.visits,
            first_purchase_at = least(s.first_purchase_at, EXCLUDED.first_purchase_at),
            last_purchase_at = greatest(s.last_purchase_at, EXCLUDED.last_purchase_at),
            points_earned = s.points_earned + EXCLUDED.points_earned,
            points_burned = s.points_burned + EXCLUDED.points_burned,
            updated_at = now()
        RETURNING 1
    ), network AS (
        SELECT shopper_id, sum(spend_minor)::bigint AS spend_minor,
               sum(visits)::integer AS visits, min(first_at) AS first_at,
               max(last_at) AS last_at, sum(points_earned)::bigint AS points_earned,
               sum(points_burned)::bigint AS points_burned
        FROM tx GROUP BY shopper_id
    ), categories AS (
        INSERT INTO shopper_category_stats AS c (shopper_id, partner_id, category, spend_minor,
                                                 lines, last_line_at)
        SELECT shopper_id, partner_id, category, sum(spend_minor), count(*), max(occurred_at)
        FROM owned WHERE category IS NOT NULL
        GROUP BY shopper_id, partner_id, category ORDER BY shopper_id, partner_id, category
        ON CONFLICT (shopper_id, partner_id, category) DO UPDATE SET
            spend_minor = c.spend_minor + EXCLUDED.spend_minor,
            lines = c.lines + EXCLUDED.lines,
            last_line_at = greatest(c.last_line_at, EXCLUDED.last_line_at)
        RETURNING 1
    ), months AS (
        INSERT INTO shopper_partner_months AS m (shopper_id, partner_id, month, visits,
                                                 spend_minor)
        SELECT shopper_id, partner_id, date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date,
               sum(visits), sum(spend_minor)
        FROM owned WHERE category IS NULL AND visits > 0
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (shopper_id, partner_id, month) DO UPDATE SET
            visits = m.visits + EXCLUDED.visits,
            spend_minor = m.spend_minor + EXCLUDED.spend_minor
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM taken),
           (SELECT array_agg(DISTINCT shopper_id) FROM owned),
           n.ids, n.spend, n.visits, n.first_at, n.last_at, n.earned, n.burned
    INTO v_folded, v_shoppers, v_ids, v_spend, v_visits, v_first, v_last, v_earned, v_burned
    FROM (SELECT array_agg(shopper_id ORDER BY shopper_id) AS ids,
                 array_agg(spend_minor ORDER BY shopper_id) AS spend,
                 array_agg(visits ORDER BY shopper_id) AS visits,
                 array_agg(first_at ORDER BY shopper_id) AS first_at,
                 array_agg(last_at ORDER BY shopper_id) AS last_at,
                 array_agg(points_earned ORDER BY shopper_id) AS earned,
                 array_agg(points_burned ORDER BY shopper_id) AS burned
          FROM network) n;
    IF v_folded = 0 THEN
        RETURN 0;
    END IF;
    -- Sums and favourites in one write; the favourites read the rows just folded.
    INSERT INTO shopper_stats AS s (shopper_id, spend_minor, visits, first_purchase_at,
        last_purchase_at, points_earned, points_burned, partners_visited, favourite_partner_id,
        favourite_category)
    SELECT n.shopper_id, n.spend_minor, n.visits, n.first_at, n.last_at, n.points_earned,
           n.points_burned,
           (SELECT count(*) FROM shopper_partner_stats p
            WHERE p.shopper_id = n.shopper_id AND p.visits > 0),
           (SELECT p.partner_id FROM shopper_partner_stats p
            WHERE p.shopper_id = n.shopper_id AND p.visits > 0
            ORDER BY p.spend_minor DESC, p.visits DESC, p.partner_id
            LIMIT 1),
           (SELECT c.category FROM shopper_category_stats c
            WHERE c.shopper_id = n.shopper_id
            GROUP BY c.category
            ORDER BY sum(c.spend_minor) DESC, c.category LIMIT 1)
    FROM unnest(v_ids, v_spend, v_visits, v_first, v_last, v_earned, v_burned)
         AS n (shopper_id, spend_minor, visits, first_at, last_at, points_earned,
               points_burned)
    ORDER BY n.shopper_id
    ON CONFLICT (shopper_id) DO UPDATE SET
        spend_minor = s.spend_minor + EXCLUDED.spend_minor,
        visits = s.visits + EXCLUDED.visits,
        first_purchase_at = least(s.first_purchase_at, EXCLUDED.first_purchase_at),
        last_purchase_at = greatest(s.last_purchase_at, EXCLUDED.last_purchase_at),
        points_earned = s.points_earned + EXCLUDED.points_earned,
        points_burned = s.points_burned + EXCLUDED.points_burned,
        partners_visited = EXCLUDED.partners_visited,
        favourite_partner_id = EXCLUDED.favourite_partner_id,
        favourite_category = EXCLUDED.favourite_category,
        updated_at = now();
    -- Shoppers with only basket lines in this batch: the recompute alone, as before.
    IF cardinality(v_shoppers) > coalesce(cardinality(v_ids), 0) THEN
        PERFORM aggregates_recompute_favourites(
            ARRAY(SELECT unnest(v_shoppers) EXCEPT SELECT unnest(v_ids)));
    END IF;
    RETURN v_folded;
END $$;
