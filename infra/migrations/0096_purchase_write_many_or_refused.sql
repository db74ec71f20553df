-- Issue 7: partner_purchase_write_many (0093) in a subtransaction of its own, one round trip.
-- Before, the caller sent `SAVEPOINT purchase_many` and then the write: two round trips per
-- group commit, each a wait for the event loop and for a CPU under load (about 3 ms of a
-- group's ~24 ms at 64 connections). An EXCEPTION block is that savepoint, taken by the
-- server: a write refused for a reason the caller handles rolls back to it, which releases the
-- locks it took, and answers one row whose `refused` names the SQLSTATE:
--   * 40P01 / 40001: a deadlock or serialization failure against a neighbour's locks (the
--     caller posts those purchases the single way);
--   * CLB01: a partner_ref recorded concurrently since the read (0093 raises it).
-- Any other error propagates as before. On success, the rows of partner_purchase_write_many
-- with `refused` NULL, and the subtransaction is released into the caller's transaction.
CREATE FUNCTION partner_purchase_write_many_or_refused(
    p_now timestamptz, p_lock_shopper_ids bigint[], p_transaction_ids uuid[], p_partner_ids bigint[],
    p_partner_refs text[], p_shopper_ids bigint[], p_card_numbers text[], p_amounts_minor bigint[],
    p_pricing_versions integer[], p_issue_prices_micros bigint[], p_expires_at timestamptz[],
    p_idempotency_keys text[], p_earn_keys text[], p_earn_points bigint[], p_earn_metadata jsonb[],
    p_event_payloads jsonb[], p_line_items integer[], p_line_categories text[],
    p_line_amounts bigint[], p_breakdown_items integer[], p_item_kinds text[],
    p_item_points bigint[], p_item_campaign_ids bigint[], p_item_payers text[],
    p_tier_names text[], p_tier_points_min bigint[], p_tier_spend_min bigint[]
) RETURNS TABLE (n integer, written boolean, balance_after bigint, points_earned bigint,
                 spend_minor bigint, tier text, event_recorded boolean, refused text)
LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        -- A plpgsql set-returning function hands over its rows only once it has run to the
        -- end, so a refused write appends none of them here.
        RETURN QUERY
        SELECT w.n, w.written, w.balance_after, w.points_earned, w.spend_minor, w.tier,
               w.event_recorded, NULL::text
        FROM partner_purchase_write_many(
            p_now, p_lock_shopper_ids, p_transaction_ids, p_partner_ids, p_partner_refs,
            p_shopper_ids, p_card_numbers, p_amounts_minor, p_pricing_versions,
            p_issue_prices_micros, p_expires_at, p_idempotency_keys, p_earn_keys,
            p_earn_points, p_earn_metadata, p_event_payloads, p_line_items,
            p_line_categories, p_line_amounts, p_breakdown_items, p_item_kinds,
            p_item_points, p_item_campaign_ids, p_item_payers, p_tier_names,
            p_tier_points_min, p_tier_spend_min) AS w;
    EXCEPTION WHEN deadlock_detected OR serialization_failure OR SQLSTATE 'CLB01' THEN
        RETURN QUERY SELECT 0, false, NULL::bigint, NULL::bigint, NULL::bigint, NULL::text,
                            false, SQLSTATE::text;
    END;
END $$;
