-- Issue 7, the purchase path's writes in one statement. After its one read and the assessment
-- (and the campaign awards, when a campaign applies), `partners.operations.purchase` makes every
-- write of a purchase by ONE call of this function, in the order the separate statements had:
--   1. ledger.earn for the partner-paid points (p_earn_points > 0), unchanged: the ledger's own
--      function with its idempotency claim, wallet lock, triggers and errors;
--   2. ledger.earn as a marketing-paid goodwill for the network campaigns (p_network_points > 0),
--      what ledger.goodwill(reason 'campaign') calls;
--   3. the partner_transactions row (ON CONFLICT DO NOTHING: a ref taken concurrently);
--   4. the basket lines and the breakdown;
--   5. the shopper's tier qualification over 12 months, which sees the row of step 3 (each
--      statement of a PL/pgSQL function sees the ones before it);
--   6. when the qualification reaches a tier above the base one (p_tier_names, in rank order,
--      with their thresholds p_tier_points_min / p_tier_spend_min), the shopper's tier row,
--      ensured and locked as shoppers.tiers.upgrade_if_qualified does (ENSURE_TIER_ROW,
--      TIER_FOR_UPDATE), its tier returned in `tier`;
--   7. the purchase.recorded event, unless the qualified tier is above the row's: then the
--      caller changes the tier (tier.changed) and records the event after it, as before.
-- It stops early, having written no more, when an earn is a replay (earn->>'replayed') or the
-- ref is taken (recorded false): the caller raises partner_ref_conflict, which rolls back the
-- whole transaction, as when these were separate statements. A ledger error propagates as
-- raised by ledger.earn (SQLSTATE CL001).
-- Copies of shoppers/queries.py, which must stay the same: the qualification is
-- QUALIFICATION_12M (for p_shopper_id at p_now; tests/integration/test_purchase_write.py
-- compares the two), the tier row's ENSURE_TIER_ROW and TIER_FOR_UPDATE. Called with the
-- arguments of partners.queries.PURCHASE_WRITE only; ledger.earn is called, never changed.
CREATE FUNCTION partner_purchase_write(
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

    -- QUALIFICATION_12M
    SELECT coalesce(sum(CASE WHEN t.kind = 'purchase' THEN t.points ELSE -t.points END), 0),
           coalesce(sum(CASE WHEN t.kind = 'purchase' THEN coalesce(t.amount_minor, 0)
                             ELSE -coalesce(t.amount_minor, 0) END), 0)
    INTO points_earned, spend_minor
    FROM partner_transactions t
    LEFT JOIN partner_transactions o ON o.id = t.original_id
    WHERE t.shopper_id IN (SELECT p_shopper_id UNION ALL
                           SELECT id FROM shoppers WHERE merged_into_id = p_shopper_id)
      AND t.created_at > p_now - interval '12 months'
      AND (t.kind = 'purchase' OR (t.kind = 'refund' AND o.kind = 'purchase'));

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
    INSERT INTO event_outbox (event_type, partner_id, shopper_id, payload)
    VALUES ('purchase.recorded', p_partner_id, p_shopper_id, p_event_payload);
    event_recorded := true;
END $$;
