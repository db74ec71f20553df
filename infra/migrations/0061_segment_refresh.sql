-- Segment refresh (issue 8): RFM scores, named segments, churn and birthday audiences,
-- category affinity and predicted value, recomputed set-based from the folded aggregates.

-- The scores of every purchasing shopper (the operator's view; not consent-filtered).
CREATE TABLE shopper_scores (
    shopper_id            bigint   PRIMARY KEY,
    recency_score         smallint NOT NULL CHECK (recency_score BETWEEN 1 AND 5),
    frequency_score       smallint NOT NULL CHECK (frequency_score BETWEEN 1 AND 5),
    monetary_score        smallint NOT NULL CHECK (monetary_score BETWEEN 1 AND 5),
    rfm_segment           text     NOT NULL CHECK (rfm_segment IN ('champions', 'loyal',
                              'promising', 'new', 'at_risk', 'hibernating', 'lost')),
    predicted_value_minor bigint   NOT NULL CHECK (predicted_value_minor >= 0)
);

CREATE TABLE segment_refreshes (
    refresh_id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    as_of           timestamptz NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at     timestamptz NOT NULL,
    shoppers_scored bigint      NOT NULL,
    memberships     bigint      NOT NULL
);

-- Quintile of a value by rank over the network: equal values share a score (ntile would put
-- equal shoppers in different quintiles by an arbitrary tie-break).
-- Recompute everything as of p_now; returns the number of memberships now in shopper_segments.
-- Only shoppers who consented to data sharing get segments derived from their behaviour across
-- partners (every segment except birthday_month): shopper_segments is read as a campaign
-- condition by partners, so withdrawing consent removes them at this refresh.
CREATE FUNCTION segments_refresh(p_now timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_scored bigint;
    v_members bigint;
    v_month integer;
BEGIN
    SELECT extract(month FROM p_now AT TIME ZONE time_zone)::integer INTO v_month
    FROM network_settings;

    -- 1. RFM quintiles and the named segment of every purchasing, live shopper.
    CREATE TEMP TABLE refresh_scores ON COMMIT DROP AS
    WITH base AS (
        SELECT st.shopper_id, st.last_purchase_at, st.first_purchase_at, st.visits,
               st.spend_minor
        FROM shopper_stats st
        JOIN shoppers s ON s.id = st.shopper_id
        WHERE st.visits > 0 AND st.last_purchase_at IS NOT NULL
          AND s.erased_at IS NULL AND s.merged_into_id IS NULL
    ), ranked AS (
        SELECT b.*,
               least(5, 1 + 5 * (rank() OVER (ORDER BY last_purchase_at) - 1)
                                / count(*) OVER ())::smallint AS r,
               least(5, 1 + 5 * (rank() OVER (ORDER BY visits) - 1)
                                / count(*) OVER ())::smallint AS f,
               least(5, 1 + 5 * (rank() OVER (ORDER BY spend_minor) - 1)
                                / count(*) OVER ())::smallint AS m
        FROM base b
    )
    SELECT shopper_id, r, f, m, last_purchase_at,
           CASE WHEN r >= 4 AND f >= 4 AND m >= 4 THEN 'champions'
                WHEN r >= 3 AND f >= 4 THEN 'loyal'
                WHEN first_purchase_at >= p_now - interval '30 days' THEN 'new'
                WHEN r >= 3 THEN 'promising'
                WHEN f >= 3 THEN 'at_risk'
                WHEN r = 2 THEN 'hibernating'
                ELSE 'lost' END AS rfm_segment,
           -- Spend per year of tenure, times the share expected to stay, by recency.
           greatest(0, floor(spend_minor::numeric * 365
               * CASE WHEN last_purchase_at >= p_now - interval '90 days' THEN 100
                      WHEN last_purchase_at >= p_now - interval '180 days' THEN 50
                      WHEN last_purchase_at >= p_now - interval '365 days' THEN 20
                      ELSE 5 END
               / (100 * greatest(30, extract(epoch FROM p_now - first_purchase_at) / 86400))
           ))::bigint AS predicted_value_minor
    FROM ranked;
    GET DIAGNOSTICS v_scored = ROW_COUNT;

    DELETE FROM shopper_scores sc
    WHERE NOT EXISTS (SELECT 1 FROM refresh_scores r WHERE r.shopper_id = sc.shopper_id);
    INSERT INTO shopper_scores AS sc (shopper_id, recency_score, frequency_score, monetary_score,
                                      rfm_segment, predicted_value_minor)
    SELECT shopper_id, r, f, m, rfm_segment, predicted_value_minor FROM refresh_scores
    ORDER BY shopper_id
    ON CONFLICT (shopper_id) DO UPDATE SET
        recency_score = EXCLUDED.recency_score,
        frequency_score = EXCLUDED.frequency_score,
        monetary_score = EXCLUDED.monetary_score,
        rfm_segment = EXCLUDED.rfm_segment,
        predicted_value_minor = EXCLUDED.predicted_value_minor
    WHERE (sc.recency_score, sc.frequency_score, sc.monetary_score, sc.rfm_segment,
           sc.predicted_value_minor)
          IS DISTINCT FROM (EXCLUDED.recency_score, EXCLUDED.frequency_score,
                            EXCLUDED.monetary_score, EXCLUDED.rfm_segment,
                            EXCLUDED.predicted_value_minor);

    -- 2. The memberships as they should be now.
    CREATE TEMP TABLE refresh_segments ON COMMIT DROP AS
    WITH consenting AS (
        SELECT r.* FROM refresh_scores r
        JOIN shopper_consents c ON c.shopper_id = r.shopper_id AND c.data_sharing
    ), category_spend AS (
        SELECT cs.shopper_id,
               left(trim(BOTH '_' FROM regexp_replace(lower(cs.category), '[^a-z0-9_-]+', '_',
                                                       'g')), 48) AS category,
               sum(cs.spend_minor) AS spend_minor
        FROM shopper_category_stats cs
        JOIN consenting c ON c.shopper_id = cs.shopper_id
        GROUP BY 1, 2
    ), category_share AS (
        SELECT shopper_id, category, spend_minor,
               sum(spend_minor) OVER (PARTITION BY shopper_id) AS total_minor,
               row_number() OVER (PARTITION BY shopper_id
                                  ORDER BY spend_minor DESC, category) AS place
        FROM category_spend
        WHERE category <> ''
    )
    SELECT shopper_id, rfm_segment AS segment FROM consenting
    UNION ALL
    SELECT shopper_id, 'churn_90' FROM consenting
    WHERE last_purchase_at < p_now - interval '90 days'
    UNION ALL
    SELECT shopper_id, 'churn_180' FROM consenting
    WHERE last_purchase_at < p_now - interval '180 days'
    UNION ALL
    SELECT shopper_id, 'high_value' FROM (
        SELECT shopper_id, ntile(5) OVER (ORDER BY predicted_value_minor DESC, shopper_id) AS q
        FROM consenting WHERE predicted_value_minor > 0) v
    WHERE q = 1
    UNION ALL
    -- affinity: a category with at least a quarter of the shopper's basket spend (top 3)
    SELECT shopper_id, 'affinity:' || category FROM category_share
    WHERE place <= 3 AND total_minor > 0 AND spend_minor * 4 >= total_minor
    UNION ALL
    SELECT s.id, 'birthday_month' FROM shoppers s
    WHERE s.birth_date IS NOT NULL AND extract(month FROM s.birth_date) = v_month
      AND s.erased_at IS NULL AND s.merged_into_id IS NULL;

    -- 3. Apply the difference only, so unchanged memberships are not rewritten.
    DELETE FROM shopper_segments s
    WHERE NOT EXISTS (SELECT 1 FROM refresh_segments n
                      WHERE n.shopper_id = s.shopper_id AND n.segment = s.segment);
    INSERT INTO shopper_segments (shopper_id, segment, refreshed_at)
    SELECT shopper_id, segment, p_now FROM refresh_segments ORDER BY shopper_id, segment
    ON CONFLICT (shopper_id, segment) DO NOTHING;
    SELECT count(*) INTO v_members FROM refresh_segments;

    INSERT INTO segment_refreshes (as_of, finished_at, shoppers_scored, memberships)
    VALUES (p_now, clock_timestamp(), v_scored, v_members);
    RETURN v_members;
END $$;
