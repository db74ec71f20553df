-- Aggregated shopper data (issue 8): per shopper and per shopper x partner, kept current by a
-- worker that folds a delta queue filled by triggers on partner_transactions and purchase_lines.
--
-- Sequence order is not commit order: a watermark on max(id) or created_at would skip a
-- transaction that commits late with a lower id. The triggers below write one queue row in the
-- same transaction as the change, so a row becomes visible exactly when its change commits, and
-- the folder deletes what it takes (FOR UPDATE SKIP LOCKED): nothing is skipped or folded twice.

CREATE TABLE aggregate_delta (
    delta_id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shopper_id    bigint      NOT NULL,
    partner_id    bigint      NOT NULL,
    category      text,       -- NULL: a transaction delta; else a basket line's category
    occurred_at   timestamptz NOT NULL,
    spend_minor   bigint      NOT NULL DEFAULT 0,   -- negative for a refunded purchase
    visits        integer     NOT NULL DEFAULT 0,
    points_earned bigint      NOT NULL DEFAULT 0,
    points_burned bigint      NOT NULL DEFAULT 0,
    enqueued_at   timestamptz NOT NULL DEFAULT now()
);

-- Per shopper x partner.
CREATE TABLE shopper_partner_stats (
    shopper_id        bigint      NOT NULL,
    partner_id        bigint      NOT NULL,
    spend_minor       bigint      NOT NULL DEFAULT 0,
    visits            integer     NOT NULL DEFAULT 0,
    first_purchase_at timestamptz,
    last_purchase_at  timestamptz,
    points_earned     bigint      NOT NULL DEFAULT 0,
    points_burned     bigint      NOT NULL DEFAULT 0,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shopper_id, partner_id)
);
CREATE INDEX shopper_partner_stats_partner ON shopper_partner_stats (partner_id, shopper_id);

-- Per shopper, across the network; favourites are recomputed for the shoppers of each fold.
CREATE TABLE shopper_stats (
    shopper_id           bigint      PRIMARY KEY,
    spend_minor          bigint      NOT NULL DEFAULT 0,
    visits               integer     NOT NULL DEFAULT 0,
    first_purchase_at    timestamptz,
    last_purchase_at     timestamptz,
    points_earned        bigint      NOT NULL DEFAULT 0,
    points_burned        bigint      NOT NULL DEFAULT 0,
    partners_visited     integer     NOT NULL DEFAULT 0,
    favourite_partner_id bigint,
    favourite_category   text,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Basket-line spend per shopper x partner x category.
CREATE TABLE shopper_category_stats (
    shopper_id   bigint      NOT NULL,
    partner_id   bigint      NOT NULL,
    category     text        NOT NULL,
    spend_minor  bigint      NOT NULL DEFAULT 0,
    lines        integer     NOT NULL DEFAULT 0,
    last_line_at timestamptz NOT NULL,
    PRIMARY KEY (shopper_id, partner_id, category)
);

-- Months with purchases per shopper x partner (retention and cohorts), in UTC months.
CREATE TABLE shopper_partner_months (
    shopper_id  bigint  NOT NULL,
    partner_id  bigint  NOT NULL,
    month       date    NOT NULL CHECK (extract(day FROM month) = 1),
    visits      integer NOT NULL DEFAULT 0,
    spend_minor bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (shopper_id, partner_id, month)
);
CREATE INDEX shopper_partner_months_partner ON shopper_partner_months (partner_id, month);

-- Triggers: one queue row per change, in the change's transaction ---------------------------

CREATE FUNCTION aggregate_enqueue_transaction() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_original_kind text;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.kind = 'purchase' THEN
            INSERT INTO aggregate_delta (shopper_id, partner_id, occurred_at, spend_minor,
                                         visits, points_earned)
            VALUES (NEW.shopper_id, NEW.partner_id, NEW.created_at,
                    coalesce(NEW.amount_minor, 0), 1, NEW.points);
        ELSIF NEW.kind = 'redemption' THEN
            INSERT INTO aggregate_delta (shopper_id, partner_id, occurred_at, points_burned)
            VALUES (NEW.shopper_id, NEW.partner_id, NEW.created_at, NEW.points);
        ELSIF NEW.kind = 'refund' THEN
            SELECT kind INTO v_original_kind FROM partner_transactions WHERE id = NEW.original_id;
            IF v_original_kind = 'purchase' THEN
                INSERT INTO aggregate_delta (shopper_id, partner_id, occurred_at, spend_minor,
                                             points_earned)
                VALUES (NEW.shopper_id, NEW.partner_id, NEW.created_at,
                        -coalesce(NEW.amount_minor, 0), -NEW.points);
            ELSIF v_original_kind IS NOT NULL THEN
                INSERT INTO aggregate_delta (shopper_id, partner_id, occurred_at, points_burned)
                VALUES (NEW.shopper_id, NEW.partner_id, NEW.created_at, -NEW.points);
            END IF;
        END IF;
        -- an open hold burns nothing yet: its capture does (below)
    ELSIF NEW.kind = 'hold' AND NEW.status = 'captured' AND OLD.status <> 'captured' THEN
        INSERT INTO aggregate_delta (shopper_id, partner_id, occurred_at, points_burned)
        VALUES (NEW.shopper_id, NEW.partner_id, now(), NEW.points_captured);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER partner_transactions_aggregate
    AFTER INSERT OR UPDATE OF status ON partner_transactions
    FOR EACH ROW EXECUTE FUNCTION aggregate_enqueue_transaction();

CREATE FUNCTION aggregate_enqueue_line() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO aggregate_delta (shopper_id, partner_id, category, occurred_at, spend_minor)
    VALUES (NEW.shopper_id, NEW.partner_id, NEW.category, now(), NEW.amount_minor);
    RETURN NULL;
END $$;

CREATE TRIGGER purchase_lines_aggregate
    AFTER INSERT ON purchase_lines
    FOR EACH ROW EXECUTE FUNCTION aggregate_enqueue_line();

-- The folder ----------------------------------------------------------------------------------

-- Fold up to p_batch_max queued deltas; returns how many were folded. One folder at a time
-- (a transaction advisory lock: another caller returns 0 at once), so the upserts of
-- concurrent folders can never deadlock on the same shopper rows; producers never wait.
CREATE FUNCTION aggregates_fold(p_batch_max integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    v_folded integer;
    v_shoppers bigint[];
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('coalition.aggregates_fold')) THEN
        RETURN 0;
    END IF;
    WITH taken AS (
        DELETE FROM aggregate_delta
        WHERE delta_id IN (SELECT delta_id FROM aggregate_delta
                           ORDER BY delta_id LIMIT p_batch_max FOR UPDATE SKIP LOCKED)
        RETURNING *
    ), tx AS (
        SELECT shopper_id, partner_id,
               sum(spend_minor)::bigint AS spend_minor, sum(visits)::integer AS visits,
               min(occurred_at) FILTER (WHERE visits > 0) AS first_at,
               max(occurred_at) FILTER (WHERE visits > 0) AS last_at,
               sum(points_earned)::bigint AS points_earned,
               sum(points_burned)::bigint AS points_burned
        FROM taken WHERE category IS NULL
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
        FROM taken WHERE category IS NOT NULL
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
        FROM taken WHERE category IS NULL AND visits > 0
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (shopper_id, partner_id, month) DO UPDATE SET
            visits = m.visits + EXCLUDED.visits,
            spend_minor = m.spend_minor + EXCLUDED.spend_minor
        RETURNING 1
    )
    SELECT count(*), array_agg(DISTINCT shopper_id) INTO v_folded, v_shoppers FROM taken;
    IF v_folded = 0 THEN
        RETURN 0;
    END IF;
    -- Favourites read the rows just folded, so they run as a second statement.
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
                              ORDER BY sum(c.spend_minor) DESC, c.category LIMIT 1)
    WHERE s.shopper_id = ANY (v_shoppers);
    RETURN v_folded;
END $$;

-- Transactions recorded before this migration: queue them once, so the folder catches up.
INSERT INTO aggregate_delta (shopper_id, partner_id, occurred_at, spend_minor, visits,
                             points_earned, points_burned)
SELECT t.shopper_id, t.partner_id, t.created_at,
       CASE WHEN t.kind = 'purchase' THEN coalesce(t.amount_minor, 0)
            WHEN t.kind = 'refund' AND o.kind = 'purchase' THEN -coalesce(t.amount_minor, 0)
            ELSE 0 END,
       CASE WHEN t.kind = 'purchase' THEN 1 ELSE 0 END,
       CASE WHEN t.kind = 'purchase' THEN t.points
            WHEN t.kind = 'refund' AND o.kind = 'purchase' THEN -t.points ELSE 0 END,
       CASE WHEN t.kind = 'redemption' THEN t.points
            WHEN t.kind = 'hold' AND t.status = 'captured' THEN t.points_captured
            WHEN t.kind = 'refund' AND o.kind IN ('redemption', 'hold') THEN -t.points
            ELSE 0 END
FROM partner_transactions t
LEFT JOIN partner_transactions o ON o.id = t.original_id
WHERE t.kind IN ('purchase', 'redemption', 'refund')
   OR (t.kind = 'hold' AND t.status = 'captured');
INSERT INTO aggregate_delta (shopper_id, partner_id, category, occurred_at, spend_minor)
SELECT l.shopper_id, l.partner_id, l.category, t.created_at, l.amount_minor
FROM purchase_lines l JOIN partner_transactions t ON t.id = l.transaction_id;
