-- Issue 7: a group commit's redemptions, holds and captures written by one call.
-- Before, each of them ran by itself after its own savepoint: SAVEPOINT, the read
-- (BURN_CONTEXT, or CAPTURE_CONTEXT), the write (0094): three round trips per call, about seven
-- calls per group in the burn-heavy bench. Now the group reads them in one statement per read
-- (partners.queries.BURN_CONTEXT_MANY, CAPTURE_CONTEXT_MANY) and writes them all in one call of
-- this function.
--
-- First it locks the wallets of p_lock_shopper_ids (every shopper the items burn from), in
-- shopper id order, as partner_purchase_write_many does: a group then holds every wallet it
-- needs before it claims any ledger key. Without it, a group that claimed a key (a partner_ref)
-- and went on to the next wallet could wait for a group that held that wallet and waited for
-- the same key: a deadlock per wallet the two shared, each a second of deadlock_timeout (the
-- e2e test's 40 burns on 8 shoppers with one shared ref took over 10 s).
-- Then each item runs 0094's own function for its kind (partner_redeem_write,
-- partner_hold_write or partner_capture_write),
-- unchanged, in an EXCEPTION block of its own (a subtransaction: what the caller's savepoint per
-- call was), in array order; the caller sorts the items by shopper, so that every group takes
-- its wallets in one order. An item whose write raises, or whose ref the single path would
-- refuse (a replayed ledger key, a ref recorded concurrently: `recorded` false), is rolled back
-- to its block and answers a row whose `refused` names the SQLSTATE: nothing of it stays, its
-- locks are released, and the caller runs that call the single way, which answers the error it
-- always did. Every other item answers its ledger result (`written`: 0094's `burn` or `hold`)
-- and stays in the caller's transaction. A row per item, `n` its position from 1.
--
-- The arrays are 0094's arguments of the three kinds, one element per item; an argument the
-- item's kind does not take is NULL (a capture takes p_transaction_ids: the hold's record,
-- p_partner_ids, p_ledger_keys, p_ledger_hold_ids, p_points, p_values_minor,
-- p_redemption_prices_micros and p_metadata). A capture has no record of its own to insert, so
-- only a replayed ledger key sends it to the single path.
CREATE FUNCTION partner_burn_write_many(
    p_lock_shopper_ids bigint[], p_kinds text[], p_transaction_ids uuid[],
    p_partner_ids bigint[], p_partner_refs text[], p_shopper_ids bigint[], p_card_numbers text[],
    p_points bigint[], p_values_minor bigint[], p_pricing_versions integer[],
    p_idempotency_keys text[], p_ledger_keys text[], p_redemption_prices_micros bigint[],
    p_expires_at timestamptz[], p_metadata jsonb[], p_event_payloads jsonb[],
    p_ledger_hold_ids bigint[]
) RETURNS TABLE (n integer, written jsonb, refused text)
LANGUAGE plpgsql AS $$
DECLARE
    v_recorded boolean;
BEGIN
    PERFORM 1 FROM ledger.wallet w WHERE w.shopper_id = ANY (p_lock_shopper_ids)
    ORDER BY w.shopper_id FOR UPDATE;
    FOR i IN 1 .. coalesce(array_length(p_kinds, 1), 0) LOOP
        n := i;
        refused := NULL;
        BEGIN
            IF p_kinds[i] = 'redemption' THEN
                SELECT w.burn, w.recorded INTO written, v_recorded
                FROM partner_redeem_write(
                    p_transaction_ids[i], p_partner_ids[i], p_partner_refs[i], p_shopper_ids[i],
                    p_card_numbers[i], p_points[i], p_values_minor[i], p_pricing_versions[i],
                    p_idempotency_keys[i], p_ledger_keys[i], p_redemption_prices_micros[i],
                    p_metadata[i], p_event_payloads[i]) AS w;
            ELSIF p_kinds[i] = 'hold' THEN
                SELECT w.hold, w.recorded INTO written, v_recorded
                FROM partner_hold_write(
                    p_transaction_ids[i], p_partner_ids[i], p_partner_refs[i], p_shopper_ids[i],
                    p_card_numbers[i], p_points[i], p_pricing_versions[i],
                    p_idempotency_keys[i], p_ledger_keys[i], p_expires_at[i],
                    p_metadata[i]) AS w;
            ELSIF p_kinds[i] = 'capture' THEN
                SELECT w.capture, true INTO written, v_recorded
                FROM partner_capture_write(
                    p_transaction_ids[i], p_partner_ids[i], p_ledger_keys[i],
                    p_ledger_hold_ids[i], p_points[i], p_values_minor[i],
                    p_redemption_prices_micros[i], p_metadata[i]) AS w;
            ELSE
                RAISE EXCEPTION 'unknown burn kind %', p_kinds[i] USING ERRCODE = 'CLB03';
            END IF;
            IF (written ->> 'replayed')::boolean OR NOT v_recorded THEN
                RAISE EXCEPTION 'partner_ref % is taken: left to the single path',
                    p_partner_refs[i] USING ERRCODE = 'CLB02';
            END IF;
        EXCEPTION WHEN OTHERS THEN
            written := NULL;
            refused := SQLSTATE;
        END;
        RETURN NEXT;
    END LOOP;
END $$;
