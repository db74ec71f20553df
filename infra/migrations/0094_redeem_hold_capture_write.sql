-- Issue 7, "each partner operation as one round trip": a redemption, a hold and a capture make
-- every write by ONE call each, as a purchase does since 0085, after one read
-- (partners.queries.REDEEM_CONTEXT / CAPTURE_CONTEXT) whose checks keep their order in Python.
-- Each function runs, in the order the separate statements had:
--   partner_redeem_write:  ledger.burn; stop on a replay (the caller raises
--                          partner_ref_conflict); the partner_transactions row (ON CONFLICT DO
--                          NOTHING: a ref taken concurrently, `recorded` false, the caller raises
--                          partner_ref_conflict); the redemption.recorded event;
--   partner_hold_write:    ledger.hold; stop on a replay; the partner_transactions row;
--   partner_capture_write: ledger.capture; the hold's partner_transactions row settled.
-- A ledger error propagates as ledger.burn/hold/capture raise it (SQLSTATE CL001). The row
-- columns are partners._common.record's (INSERT_TRANSACTION) and SETTLE_HOLD's; the ledger
-- functions are called, never changed. Called with partners.queries' arguments only.
CREATE FUNCTION partner_redeem_write(
    p_transaction_id uuid,
    p_partner_id bigint,
    p_partner_ref text,
    p_shopper_id bigint,
    p_card_number text,
    p_points bigint,
    p_value_minor bigint,
    p_pricing_version integer,
    p_idempotency_key text,
    p_burn_key text,
    p_redemption_price_micros bigint,
    p_burn_metadata jsonb,
    p_event_payload jsonb,
    OUT burn jsonb,
    OUT recorded boolean
) LANGUAGE plpgsql AS $$
BEGIN
    recorded := false;
    burn := ledger.burn(p_burn_key, p_shopper_id, p_partner_id, p_points,
                        p_redemption_price_micros, p_burn_metadata);
    IF (burn ->> 'replayed')::boolean THEN
        RETURN;
    END IF;
    INSERT INTO partner_transactions (
        id, partner_id, partner_ref, kind, status, shopper_id, card_number, points, amount_minor,
        value_minor, pricing_version, original_id, ledger_entry_id, ledger_hold_id, expires_at,
        idempotency_key, network_points, network_entry_id)
    VALUES (p_transaction_id, p_partner_id, p_partner_ref, 'redemption', 'completed',
            p_shopper_id, p_card_number, p_points, NULL, p_value_minor, p_pricing_version, NULL,
            (burn ->> 'entry_id')::bigint, NULL, NULL, p_idempotency_key, 0, NULL)
    ON CONFLICT (partner_id, partner_ref) DO NOTHING;
    recorded := FOUND;
    IF NOT recorded THEN
        RETURN;
    END IF;
    INSERT INTO event_outbox (event_type, partner_id, shopper_id, payload)
    VALUES ('redemption.recorded', p_partner_id, p_shopper_id, p_event_payload);
END $$;

CREATE FUNCTION partner_hold_write(
    p_transaction_id uuid,
    p_partner_id bigint,
    p_partner_ref text,
    p_shopper_id bigint,
    p_card_number text,
    p_points bigint,
    p_pricing_version integer,
    p_idempotency_key text,
    p_hold_key text,
    p_expires_at timestamptz,
    p_hold_metadata jsonb,
    OUT hold jsonb,
    OUT recorded boolean
) LANGUAGE plpgsql AS $$
BEGIN
    recorded := false;
    hold := ledger.hold(p_hold_key, p_shopper_id, p_partner_id, p_points, p_expires_at,
                        p_hold_metadata);
    IF (hold ->> 'replayed')::boolean THEN
        RETURN;
    END IF;
    INSERT INTO partner_transactions (
        id, partner_id, partner_ref, kind, status, shopper_id, card_number, points, amount_minor,
        value_minor, pricing_version, original_id, ledger_entry_id, ledger_hold_id, expires_at,
        idempotency_key, network_points, network_entry_id)
    VALUES (p_transaction_id, p_partner_id, p_partner_ref, 'hold', 'open', p_shopper_id,
            p_card_number, p_points, NULL, NULL, p_pricing_version, NULL, NULL,
            (hold ->> 'hold_id')::bigint, p_expires_at, p_idempotency_key, 0, NULL)
    ON CONFLICT (partner_id, partner_ref) DO NOTHING;
    recorded := FOUND;
END $$;

CREATE FUNCTION partner_capture_write(
    p_transaction_id uuid,
    p_partner_id bigint,
    p_capture_key text,
    p_ledger_hold_id bigint,
    p_points bigint,
    p_value_minor bigint,
    p_redemption_price_micros bigint,
    p_capture_metadata jsonb,
    OUT capture jsonb
) LANGUAGE plpgsql AS $$
BEGIN
    capture := ledger.capture(p_capture_key, p_ledger_hold_id, p_points,
                              p_redemption_price_micros, p_capture_metadata);
    UPDATE partner_transactions
    SET status = 'captured', points_captured = p_points, value_minor = p_value_minor,
        ledger_entry_id = (capture ->> 'entry_id')::bigint
    WHERE id = p_transaction_id AND partner_id = p_partner_id;
END $$;
