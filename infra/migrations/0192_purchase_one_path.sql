-- Issue 18, each rule of a purchase said once.
--
-- shopper_qualification_12m: a shopper's tier qualification, purchases net of their refunds
-- over the 12 months before p_now, for the shopper and every shopper merged into it (their
-- transactions keep the absorbed shopper's id). No upper bound: the purchase being evaluated
-- carries the database's clock, which may run ahead of the caller's. It was a query in
-- shoppers/queries.py (QUALIFICATION_12M, which now selects from this function) with a copy in
-- partner_purchase_write and one in partner_purchase_write_many; both call it now. LANGUAGE
-- sql, STABLE and set-returning, so a FROM or LATERAL use is inlined into the caller's plan.
--
-- partner_purchase_write (0085) again, with two changes: the qualification is the function
-- above, and a NULL p_event_payload stops after the tier row (written, locked, returned in
-- `tier`), before the purchase.recorded event, with event_recorded false. A purchase that
-- may pay a referral reward (partners/purchase_write.py) is written by this function like
-- every other: the reward follows it (the referral's ledger entries and its event, its
-- breakdown item), then the tier change and the event, which carry the reward's points; so
-- the rows and their order are those of the separate statements that wrote such purchases
-- before (partners/purchase_steps.py, removed; tests/integration/
-- test_referral_purchase_rows.py compares them with rows recorded on that code).
--
-- partner_purchase_write_many (0093) again, its qualification the function above (inlined per
-- shopper by the LATERAL join, as its copy was), and its SET enable_seqscan = off (0097)
-- restated: CREATE OR REPLACE sets every property the command names and resets the others.
CREATE FUNCTION shopper_qualification_12m(p_shopper_id bigint, p_now timestamptz)
RETURNS TABLE (points_earned numeric, spend_minor numeric)
LANGUAGE sql STABLE AS $$
SELECT coalesce(sum(CASE WHEN t.kind = 'purchase' THEN t.points ELSE -t.points END), 0),
       coalesce(sum(CASE WHEN t.kind = 'purchase' THEN coalesce(t.amount_minor, 0)
                         ELSE -coalesce(t.amount_minor, 0) END), 0)
FROM partner_transactions t
LEFT JOIN partner_transactions o ON o.id = t.original_id
WHERE t.shopper_id IN (SELECT p_shopper_id UNION ALL
                       SELECT id FROM shoppers WHERE merged_into_id = p_shopper_id)
  AND t.created_at > p_now - interval '12 months'
  AND (t.kind = 'purchase' OR (t.kind = 'refund' AND o.kind = 'purchase'))
$$;

CREATE OR REPLACE FUNCTION partner_purchase_write(
    p_transaction_id uuid,
    p_partner_id bigint,
    p_partner_ref text,
    p_shopper_id bigint,
    p_card_number text,
    p_amount_minor bigint,
    p_pricing_version integer,
    p_idempotency_key text,
    p_issue_price_micros bigint,
    p_expires_at timestamptz,
    p_earn_key text,
    p_earn_points bigint,
    p_earn_metadata jsonb,
    p_network_key text,
    p_network_points bigint,
    p_network_metadata jsonb,
    p_now timestamptz,
    p_line_categories text[],
    p_line_amounts bigint[],
    p_item_kinds text[],
    p_item_points bigint[],
    p_item_campaign_ids bigint[],
    p_item_payers text[],
    p_tier_names text[],
    p_tier_points_min bigint[],
    p_tier_spend_min bigint[],
    p_event_payload jsonb,
    OUT earn jsonb,
    OUT network jsonb,
    OUT recorded boolean,
    OUT points_earned bigint,
    OUT spend_minor bigint,
    OUT tier text,
    OUT event_recorded boolean
) LANGUAGE plpgsql AS $$
DECLARE
    v_qualified integer;  -- rank of the best tier qualified for (0: the base tier)
BEGIN
    recorded := false;
    event_recorded := false;
    IF p_earn_points > 0 THEN
        earn := ledger.earn(p_earn_key, p_shopper_id, p_partner_id, p_earn_points,
                            p_issue_price_micros, p_expires_at, 'earn', p_earn_metadata);
        IF (earn ->> 'replayed')::boolean THEN
            RETURN;
        END IF;
    END IF;
    IF p_network_points > 0 THEN
        network := ledger.earn(p_network_key, p_shopper_id, NULL, p_network_points,
                               p_issue_price_micros, p_expires_at, 'goodwill',
                               p_network_metadata);
        IF (network ->> 'replayed')::boolean THEN
            RETURN;
        END IF;
    END IF;

    INSERT INTO partner_transactions (
        id, partner_id, partner_ref, kind, status, shopper_id, card_number, points, amount_minor,
        value_minor, pricing_version, original_id, ledger_entry_id, ledger_hold_id, expires_at,
        idempotency_key, network_points, network_entry_id)
    VALUES (p_transaction_id, p_partner_id, p_partner_ref, 'purchase', 'completed', p_shopper_id,
            p_card_number, p_earn_points, p_amount_minor, NULL, p_pricing_version, NULL,
            (earn ->> 'entry_id')::bigint, NULL, NULL, p_idempotency_key, p_network_points,
            (network ->> 'entry_id')::bigint)
    ON CONFLICT (partner_id, partner_ref) DO NOTHING;
    recorded := FOUND;
    IF NOT recorded THEN
        RETURN;
    END IF;

    INSERT INTO purchase_lines (transaction_id, line_no, shopper_id, partner_id, category,
                                amount_minor)
    SELECT p_transaction_id, n - 1, p_shopper_id, p_partner_id, c, a
    FROM unnest(p_line_categories, p_line_amounts) WITH ORDINALITY AS t (c, a, n);
    INSERT INTO purchase_breakdown (transaction_id, item_no, shopper_id, kind, points,
                                    campaign_id, paid_by)
    SELECT p_transaction_id, n - 1, p_shopper_id, k, p, c, b
    FROM unnest(p_item_kinds, p_item_points, p_item_campaign_ids, p_item_payers)
         WITH ORDINALITY AS t (k, p, c, b, n);

    SELECT q.points_earned, q.spend_minor INTO points_earned, spend_minor
    FROM shopper_qualification_12m(p_shopper_id, p_now) q;

    SELECT coalesce(max(n), 0) INTO v_qualified
    FROM unnest(p_tier_points_min, p_tier_spend_min) WITH ORDINALITY AS q (pm, sm, n)
    WHERE greatest(points_earned, 0) >= pm OR greatest(spend_minor, 0) >= sm;
    IF v_qualified > 0 THEN
        -- ENSURE_TIER_ROW, TIER_FOR_UPDATE
        INSERT INTO shopper_tiers (shopper_id, tier, since, review_at)
        VALUES (p_shopper_id, 'member', p_now, p_now + interval '1 year')
        ON CONFLICT (shopper_id) DO NOTHING;
        SELECT s.tier INTO tier FROM shopper_tiers s WHERE s.shopper_id = p_shopper_id FOR UPDATE;
        IF v_qualified > coalesce(array_position(p_tier_names, tier), 0) THEN
            RETURN;  -- an upgrade: the caller records tier.changed, then purchase.recorded
        END IF;
    END IF;
    IF p_event_payload IS NULL THEN
        RETURN;  -- a referral purchase: the caller pays the reward, then records the event
    END IF;
    INSERT INTO event_outbox (event_type, partner_id, shopper_id, payload)
    VALUES ('purchase.recorded', p_partner_id, p_shopper_id, p_event_payload);
    event_recorded := true;
END $$;

CREATE OR REPLACE FUNCTION partner_purchase_write_many(
    p_now timestamptz,
    p_lock_shopper_ids bigint[],
    p_transaction_ids uuid[],
    p_partner_ids bigint[],
    p_partner_refs text[],
    p_shopper_ids bigint[],
    p_card_numbers text[],
    p_amounts_minor bigint[],
    p_pricing_versions integer[],
    p_issue_prices_micros bigint[],
    p_expires_at timestamptz[],
    p_idempotency_keys text[],
    p_earn_keys text[],
    p_earn_points bigint[],
    p_earn_metadata jsonb[],
    p_event_payloads jsonb[],
    p_line_items integer[],
    p_line_categories text[],
    p_line_amounts bigint[],
    p_breakdown_items integer[],
    p_item_kinds text[],
    p_item_points bigint[],
    p_item_campaign_ids bigint[],
    p_item_payers text[],
    p_tier_names text[],
    p_tier_points_min bigint[],
    p_tier_spend_min bigint[]
) RETURNS TABLE (n integer, written boolean, balance_after bigint, points_earned bigint,
                 spend_minor bigint, tier text, event_recorded boolean)
LANGUAGE plpgsql SET enable_seqscan = off AS $$
#variable_conflict use_column
DECLARE
    v_items partner_purchase_many_item[];
    v_posted ledger.earn_posted[];
    v_tiers partner_purchase_many_tier[];
    v_count integer;
    v_size integer := coalesce(cardinality(p_transaction_ids), 0);
BEGIN
    IF v_size NOT IN (coalesce(cardinality(p_partner_ids), 0),
                      coalesce(cardinality(p_partner_refs), 0),
                      coalesce(cardinality(p_shopper_ids), 0),
                      coalesce(cardinality(p_card_numbers), 0),
                      coalesce(cardinality(p_amounts_minor), 0),
                      coalesce(cardinality(p_pricing_versions), 0),
                      coalesce(cardinality(p_issue_prices_micros), 0),
                      coalesce(cardinality(p_expires_at), 0),
                      coalesce(cardinality(p_idempotency_keys), 0),
                      coalesce(cardinality(p_earn_keys), 0),
                      coalesce(cardinality(p_earn_points), 0),
                      coalesce(cardinality(p_earn_metadata), 0),
                      coalesce(cardinality(p_event_payloads), 0))
       OR coalesce(cardinality(p_line_items), 0) <> coalesce(cardinality(p_line_categories), 0)
       OR coalesce(cardinality(p_line_items), 0) <> coalesce(cardinality(p_line_amounts), 0)
       OR coalesce(cardinality(p_breakdown_items), 0)
          <> coalesce(cardinality(p_item_kinds), 0) THEN
        RAISE EXCEPTION 'partner_purchase_write_many: arrays of unequal length';
    END IF;

    -- The earns (ledger.earn_many), then the purchases whose earn was posted.
    SELECT array_agg(e ORDER BY e.n) INTO v_posted
    FROM ledger.earn_many(
        ARRAY(SELECT ROW(i.n, i.earn_key, i.shopper_id, i.partner_id, i.points,
                         i.issue_price_micros, i.expires_at, i.metadata)::ledger.earn_request
              FROM unnest(p_earn_keys, p_shopper_ids, p_partner_ids, p_earn_points,
                          p_issue_prices_micros, p_expires_at, p_earn_metadata)
                   WITH ORDINALITY
                   AS i (earn_key, shopper_id, partner_id, points, issue_price_micros,
                         expires_at, metadata, n)
              ORDER BY i.n),
        p_lock_shopper_ids) e;
    IF v_posted IS NULL THEN
        RETURN QUERY
        SELECT i::integer, false, NULL::bigint, NULL::bigint, NULL::bigint, NULL::text, false
        FROM generate_subscripts(p_transaction_ids, 1) i ORDER BY i;
        RETURN;
    END IF;
    SELECT array_agg(ROW(i.n, i.transaction_id, i.partner_id, i.partner_ref, i.shopper_id,
                         i.card_number, i.amount_minor, i.pricing_version, i.idempotency_key,
                         i.points, i.payload)::partner_purchase_many_item ORDER BY i.n)
    INTO v_items
    FROM unnest(p_transaction_ids, p_partner_ids, p_partner_refs, p_shopper_ids,
                p_card_numbers, p_amounts_minor, p_pricing_versions, p_idempotency_keys,
                p_earn_points, p_event_payloads) WITH ORDINALITY
         AS i (transaction_id, partner_id, partner_ref, shopper_id, card_number, amount_minor,
               pricing_version, idempotency_key, points, payload, n)
    WHERE i.n IN (SELECT d.n FROM unnest(v_posted) d);

    WITH recorded AS (
        INSERT INTO partner_transactions (
            id, partner_id, partner_ref, kind, status, shopper_id, card_number, points,
            amount_minor, value_minor, pricing_version, original_id, ledger_entry_id,
            ledger_hold_id, expires_at, idempotency_key, network_points, network_entry_id)
        SELECT x.transaction_id, x.partner_id, x.partner_ref, 'purchase', 'completed',
               x.shopper_id, x.card_number, x.points, x.amount_minor, NULL, x.pricing_version,
               NULL, d.entry_id, NULL, NULL, x.idempotency_key, 0, NULL
        FROM unnest(v_items) x JOIN unnest(v_posted) d ON d.n = x.n
        ORDER BY x.n
        ON CONFLICT (partner_id, partner_ref) DO NOTHING
        RETURNING 1
    )
    SELECT count(*) INTO v_count FROM recorded;
    IF v_count <> cardinality(v_items) THEN
        RAISE EXCEPTION USING ERRCODE = 'CLB01',
            MESSAGE = 'partner_ref_recorded_concurrently';
    END IF;

    INSERT INTO purchase_lines (transaction_id, line_no, shopper_id, partner_id, category,
                                amount_minor)
    SELECT x.transaction_id, l.line_no, x.shopper_id, x.partner_id, l.category, l.amount_minor
    FROM (SELECT t.item, t.category, t.amount_minor,
                 row_number() OVER (PARTITION BY t.item ORDER BY t.k) - 1 AS line_no
          FROM unnest(p_line_items, p_line_categories, p_line_amounts) WITH ORDINALITY
               AS t (item, category, amount_minor, k)) l
    JOIN unnest(v_items) x ON x.n = l.item
    ORDER BY x.n, l.line_no;
    INSERT INTO purchase_breakdown (transaction_id, item_no, shopper_id, kind, points,
                                    campaign_id, paid_by)
    SELECT x.transaction_id, b.item_no, x.shopper_id, b.kind, b.points, b.campaign_id, b.payer
    FROM (SELECT t.item, t.kind, t.points, t.campaign_id, t.payer,
                 row_number() OVER (PARTITION BY t.item ORDER BY t.k) - 1 AS item_no
          FROM unnest(p_breakdown_items, p_item_kinds, p_item_points, p_item_campaign_ids,
                      p_item_payers) WITH ORDINALITY
               AS t (item, kind, points, campaign_id, payer, k)) b
    JOIN unnest(v_items) x ON x.n = b.item
    ORDER BY x.n, b.item_no;

    -- The qualification of each shopper (each appears once, so it sees its own row above).
    SELECT array_agg(ROW(x.n, x.shopper_id, q.points_earned, q.spend_minor,
                         (SELECT coalesce(max(k), 0)
                          FROM unnest(p_tier_points_min, p_tier_spend_min) WITH ORDINALITY
                               AS r (pm, sm, k)
                          WHERE greatest(q.points_earned, 0) >= r.pm
                             OR greatest(q.spend_minor, 0) >= r.sm),
                         NULL)::partner_purchase_many_tier ORDER BY x.n)
    INTO v_tiers
    FROM unnest(v_items) x
    CROSS JOIN LATERAL shopper_qualification_12m(x.shopper_id, p_now) q;

    -- ENSURE_TIER_ROW and TIER_FOR_UPDATE for the shoppers qualifying for an upper tier.
    INSERT INTO shopper_tiers (shopper_id, tier, since, review_at)
    SELECT t.shopper_id, 'member', p_now, p_now + interval '1 year'
    FROM unnest(v_tiers) t WHERE t.qualified > 0 ORDER BY t.shopper_id
    ON CONFLICT (shopper_id) DO NOTHING;
    PERFORM 1 FROM shopper_tiers s
    WHERE s.shopper_id IN (SELECT t.shopper_id FROM unnest(v_tiers) t WHERE t.qualified > 0)
    ORDER BY s.shopper_id FOR UPDATE;
    SELECT array_agg(ROW(t.n, t.shopper_id, t.points_earned, t.spend_minor, t.qualified,
                         s.tier)::partner_purchase_many_tier ORDER BY t.n)
    INTO v_tiers
    FROM unnest(v_tiers) t
    LEFT JOIN shopper_tiers s ON s.shopper_id = t.shopper_id AND t.qualified > 0;

    -- purchase.recorded, unless the tier goes up (the caller records it after tier.changed).
    INSERT INTO event_outbox (event_type, partner_id, shopper_id, payload)
    SELECT 'purchase.recorded', x.partner_id, x.shopper_id, x.payload
    FROM unnest(v_items) x JOIN unnest(v_tiers) t ON t.n = x.n
    WHERE t.qualified <= coalesce(array_position(p_tier_names, t.tier), 0)
    ORDER BY x.n;

    RETURN QUERY
    SELECT i::integer, t.n IS NOT NULL, d.balance_after, t.points_earned, t.spend_minor, t.tier,
           coalesce(t.qualified <= coalesce(array_position(p_tier_names, t.tier), 0), false)
    FROM generate_subscripts(p_transaction_ids, 1) i
    LEFT JOIN unnest(v_tiers) t ON t.n = i
    LEFT JOIN unnest(v_posted) d ON d.n = i
    ORDER BY i;
END $$;
