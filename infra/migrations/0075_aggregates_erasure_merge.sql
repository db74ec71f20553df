-- Aggregated shopper data follows erasure and merge (issues 6 and 8).
--
-- Erasure deletes every row keyed to the shopper in the aggregate, score and segment tables,
-- and the folder drops deltas of erased shoppers, so nothing is rebuilt. A merge folds the
-- absorbed shopper's rows into the survivor's, and the folder credits later deltas of an
-- absorbed shopper to its survivor (merged_into_id always names the final survivor: a merge
-- re-points every shopper merged into the absorbed one).
--
-- The folder, erasure and merge serialize on the folder's advisory lock: the folder takes it
-- with a try (a busy folder skips its turn), erasure and merge wait for it, and each holds it
-- for one bounded fold batch at most. Without it a fold that started before an erasure could
-- commit rows for the shopper after the erasure deleted them.

CREATE FUNCTION aggregates_lock_key() RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$ SELECT hashtext('coalition.aggregates_fold')::bigint $$;

-- partners_visited and the favourites of the given shoppers, from their folded rows.
CREATE FUNCTION aggregates_recompute_favourites(p_shoppers bigint[]) RETURNS void
LANGUAGE sql AS $$
    UPDATE shopper_stats s SET
        partners_visited = (SELECT count(*) FROM shopper_partner_stats p
                            WHERE p.shopper_id = s.shopper_id AND p.visits > 0),
        favourite_partner_id = (SELECT p.partner_id FROM shopper_partner_stats p
                                WHERE p.shopper_id = s.shopper_id AND p.visits > 0
                                ORDER BY p.spend_minor DESC, p.visits DESC, p.partner_id
                                LIMIT 1),
        favourite_category = (SELECT c.category FROM shopper_category_stats c
                              WHERE c.shopper_id = s.shopper_id
                              GROUP BY c.category
                              ORDER BY sum(c.spend_minor) DESC, c.category LIMIT 1),
        updated_at = now()
    WHERE s.shopper_id = ANY (p_shoppers);
$$;

-- As in 0060, and: a delta of an erased shopper (or of one merged into an erased survivor) is
-- dropped; a delta of an absorbed shopper is credited to its survivor.
CREATE OR REPLACE FUNCTION aggregates_fold(p_batch_max integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_folded integer;
    v_shoppers bigint[];
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
        SELECT coalesce(s.merged_into_id, t.shopper_id) AS shopper_id, t.partner_id,
               t.category, t.occurred_at, t.spend_minor, t.visits, t.points_earned,
               t.points_burned
        FROM taken t
        JOIN shoppers s ON s.id = t.shopper_id
        LEFT JOIN shoppers survivor ON survivor.id = s.merged_into_id
        WHERE s.erased_at IS NULL AND survivor.erased_at IS NULL
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
        INSERT INTO shopper_stats AS s (shopper_id, spend_minor, visits, first_purchase_at,
            last_purchase_at, points_earned, points_burned)
        SELECT shopper_id, sum(spend_minor), sum(visits), min(first_at), max(last_at),
               sum(points_earned), sum(points_burned)
        FROM tx GROUP BY shopper_id ORDER BY shopper_id
        ON CONFLICT (shopper_id) DO UPDATE SET
            spend_minor = s.spend_minor + EXCLUDED.spend_minor,
            visits = s.visits + EXCLUDED.visits,
            first_purchase_at = least(s.first_purchase_at, EXCLUDED.first_purchase_at),
            last_purchase_at = greatest(s.last_purchase_at, EXCLUDED.last_purchase_at),
            points_earned = s.points_earned + EXCLUDED.points_earned,
            points_burned = s.points_burned + EXCLUDED.points_burned,
            updated_at = now()
        RETURNING 1
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
    SELECT (SELECT count(*) FROM taken), (SELECT array_agg(DISTINCT shopper_id) FROM owned)
    INTO v_folded, v_shoppers;
    IF v_folded = 0 THEN
        RETURN 0;
    END IF;
    -- Favourites read the rows just folded, so they run as a second statement.
    PERFORM aggregates_recompute_favourites(coalesce(v_shoppers, '{}'));
    RETURN v_folded;
END $$;

-- Erasure: every row keyed to the shopper (or to a shopper merged into it: the same person
-- under an older id) in the aggregate, score and segment tables, and its queued deltas.
-- Returns the number of rows deleted. Runs in the erasure's transaction.
CREATE FUNCTION shopper_aggregates_erase(p_shopper_id bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_ids bigint[];
    v_deleted bigint := 0;
    v_rows bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(aggregates_lock_key());
    SELECT p_shopper_id || coalesce(array_agg(id), '{}') INTO v_ids
    FROM shoppers WHERE merged_into_id = p_shopper_id;
    DELETE FROM aggregate_delta WHERE shopper_id = ANY (v_ids);
    GET DIAGNOSTICS v_rows = ROW_COUNT; v_deleted := v_deleted + v_rows;
    DELETE FROM shopper_partner_stats WHERE shopper_id = ANY (v_ids);
    GET DIAGNOSTICS v_rows = ROW_COUNT; v_deleted := v_deleted + v_rows;
    DELETE FROM shopper_category_stats WHERE shopper_id = ANY (v_ids);
    GET DIAGNOSTICS v_rows = ROW_COUNT; v_deleted := v_deleted + v_rows;
    DELETE FROM shopper_partner_months WHERE shopper_id = ANY (v_ids);
    GET DIAGNOSTICS v_rows = ROW_COUNT; v_deleted := v_deleted + v_rows;
    DELETE FROM shopper_stats WHERE shopper_id = ANY (v_ids);
    GET DIAGNOSTICS v_rows = ROW_COUNT; v_deleted := v_deleted + v_rows;
    DELETE FROM shopper_scores WHERE shopper_id = ANY (v_ids);
    GET DIAGNOSTICS v_rows = ROW_COUNT; v_deleted := v_deleted + v_rows;
    DELETE FROM shopper_segments WHERE shopper_id = ANY (v_ids);
    GET DIAGNOSTICS v_rows = ROW_COUNT; v_deleted := v_deleted + v_rows;
    RETURN v_deleted;
END $$;

-- Merge: the absorbed shopper's rows folded into the survivor's (sums add, first purchase is
-- the earlier, last the later), then deleted with its scores and segments (the survivor's are
-- recomputed at the next refresh). Runs in the merge's transaction. Returns the absorbed
-- shopper x partner rows moved.
CREATE FUNCTION shopper_aggregates_merge(p_absorbed_id bigint, p_survivor_id bigint)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_moved bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(aggregates_lock_key());
    WITH gone AS (
        DELETE FROM shopper_partner_stats WHERE shopper_id = p_absorbed_id RETURNING *
    )
    INSERT INTO shopper_partner_stats AS s (shopper_id, partner_id, spend_minor, visits,
        first_purchase_at, last_purchase_at, points_earned, points_burned)
    SELECT p_survivor_id, partner_id, spend_minor, visits, first_purchase_at,
           last_purchase_at, points_earned, points_burned
    FROM gone ORDER BY partner_id
    ON CONFLICT (shopper_id, partner_id) DO UPDATE SET
        spend_minor = s.spend_minor + EXCLUDED.spend_minor,
        visits = s.visits + EXCLUDED.visits,
        first_purchase_at = least(s.first_purchase_at, EXCLUDED.first_purchase_at),
        last_purchase_at = greatest(s.last_purchase_at, EXCLUDED.last_purchase_at),
        points_earned = s.points_earned + EXCLUDED.points_earned,
        points_burned = s.points_burned + EXCLUDED.points_burned,
        updated_at = now();
    GET DIAGNOSTICS v_moved = ROW_COUNT;

    WITH gone AS (
        DELETE FROM shopper_category_stats WHERE shopper_id = p_absorbed_id RETURNING *
    )
    INSERT INTO shopper_category_stats AS c (shopper_id, partner_id, category, spend_minor,
                                             lines, last_line_at)
    SELECT p_survivor_id, partner_id, category, spend_minor, lines, last_line_at
    FROM gone ORDER BY partner_id, category
    ON CONFLICT (shopper_id, partner_id, category) DO UPDATE SET
        spend_minor = c.spend_minor + EXCLUDED.spend_minor,
        lines = c.lines + EXCLUDED.lines,
        last_line_at = greatest(c.last_line_at, EXCLUDED.last_line_at);

    WITH gone AS (
        DELETE FROM shopper_partner_months WHERE shopper_id = p_absorbed_id RETURNING *
    )
    INSERT INTO shopper_partner_months AS m (shopper_id, partner_id, month, visits, spend_minor)
    SELECT p_survivor_id, partner_id, month, visits, spend_minor
    FROM gone ORDER BY partner_id, month
    ON CONFLICT (shopper_id, partner_id, month) DO UPDATE SET
        visits = m.visits + EXCLUDED.visits,
        spend_minor = m.spend_minor + EXCLUDED.spend_minor;

    WITH gone AS (
        DELETE FROM shopper_stats WHERE shopper_id = p_absorbed_id RETURNING *
    )
    INSERT INTO shopper_stats AS s (shopper_id, spend_minor, visits, first_purchase_at,
        last_purchase_at, points_earned, points_burned)
    SELECT p_survivor_id, spend_minor, visits, first_purchase_at, last_purchase_at,
           points_earned, points_burned
    FROM gone
    ON CONFLICT (shopper_id) DO UPDATE SET
        spend_minor = s.spend_minor + EXCLUDED.spend_minor,
        visits = s.visits + EXCLUDED.visits,
        first_purchase_at = least(s.first_purchase_at, EXCLUDED.first_purchase_at),
        last_purchase_at = greatest(s.last_purchase_at, EXCLUDED.last_purchase_at),
        points_earned = s.points_earned + EXCLUDED.points_earned,
        points_burned = s.points_burned + EXCLUDED.points_burned,
        updated_at = now();

    -- Deltas still queued for the absorbed shopper are credited to the survivor by the folder.
    DELETE FROM shopper_scores WHERE shopper_id = p_absorbed_id;
    DELETE FROM shopper_segments WHERE shopper_id = p_absorbed_id;
    PERFORM aggregates_recompute_favourites(ARRAY[p_survivor_id]);
    RETURN v_moved;
END $$;

-- An erased referrer is forgotten by the referrals that named it (the friend keeps their own
-- bonus; the erased wallet gets none): the column becomes nullable.
ALTER TABLE referrals ALTER COLUMN referrer_shopper_id DROP NOT NULL;

-- Shoppers erased or merged before this migration: apply the same rules once.
SELECT shopper_aggregates_merge(s.id, s.merged_into_id)
FROM shoppers s
WHERE s.merged_into_id IS NOT NULL
  AND (EXISTS (SELECT 1 FROM shopper_stats st WHERE st.shopper_id = s.id)
       OR EXISTS (SELECT 1 FROM shopper_category_stats c WHERE c.shopper_id = s.id))
ORDER BY s.id;
SELECT shopper_aggregates_erase(s.id) FROM shoppers s WHERE s.erased_at IS NOT NULL ORDER BY s.id;
CREATE TEMP TABLE erased_ids ON COMMIT DROP AS
SELECT s.id FROM shoppers s
LEFT JOIN shoppers survivor ON survivor.id = s.merged_into_id
WHERE s.erased_at IS NOT NULL OR survivor.erased_at IS NOT NULL;
DELETE FROM referral_codes WHERE shopper_id IN (SELECT id FROM erased_ids);
UPDATE referrals SET referrer_shopper_id = NULL
WHERE referrer_shopper_id IN (SELECT id FROM erased_ids);
DELETE FROM referrals
WHERE referred_shopper_id IN (SELECT id FROM erased_ids) AND rewarded_at IS NULL;
