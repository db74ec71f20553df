-- aggregates_fold: the same fold as 0075, with the owner of each delta looked up by key.
--
-- 0075 joined the taken deltas to `shoppers` (and the survivor) in the CTE `owned`. The plan
-- of that join follows the estimate of how many deltas a batch takes, which comes from
-- LIMIT p_batch_max (10,000) and the queue's statistics, not from what is queued: under purchase
-- load the worker folds a few dozen deltas per run (it re-runs at once while it finds any), and
-- with a custom plan each run hashed the whole `shoppers` table (a sequential scan: about 9 ms
-- of PostgreSQL CPU per run with 100,000 shoppers, 0.6 ms per purchase in
-- tests/load/workers_cpu.py --steady-s). Here the owner is a scalar subquery per delta on the
-- primary key of `shoppers`, which the planner cannot turn into a join: its cost follows the
-- deltas taken, whatever the estimate (OFFSET 0 keeps the subquery from being pulled up, so
-- the filter and the output share one evaluation).
--
-- Same result for every delta: the subquery yields coalesce(merged_into_id, id) of the
-- delta's shopper when that shopper is not erased and neither is its survivor (a missing
-- survivor row counts as not erased, as the LEFT JOIN did), else NULL, and a delta whose owner
-- is NULL is dropped, as the inner join and the WHERE clause dropped it (a shopper id with no
-- row, an erased shopper, a shopper merged into an erased survivor). shoppers.id is the
-- primary key, so the subquery returns at most one row. Everything after `owned` is unchanged.
-- tests/integration/test_aggregates_fold_equivalence.py compares it with 0075's function on
-- the same queue.

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
