-- The public events the outbox did not record yet (issue 16), and the webhook matching rule.
--
-- Refunds, holds settled and holds expired are recorded by triggers, so every path that writes
-- them (the Python operations, the set-based group writes of 0093-0098, the ledger's expiry
-- worker) records its event in the change's own transaction. Each trigger has a WHEN clause:
-- rows it does not concern (every purchase, every redemption) never call the function.

-- The webhook type an outbox event is published as; NULL: internal only. The same rule as
-- contracts.events.public_type (a test holds the two to the same answers).
CREATE FUNCTION webhooks.public_type(p_outbox_type text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_outbox_type
        WHEN 'purchase.recorded' THEN 'purchase.created'
        WHEN 'redemption.recorded' THEN 'redemption.created'
        ELSE CASE WHEN p_outbox_type = ANY (ARRAY[
            'purchase.created', 'purchase.refunded', 'redemption.created',
            'redemption.refunded', 'hold.captured', 'hold.voided', 'hold.expired',
            'statement.ready', 'statement.finalized', 'statement.paid', 'statement.disputed',
            'reconciliation.completed', 'shopper.erased', 'points.expiring'])
            THEN p_outbox_type END
    END
$$;

-- The enabled endpoints an event goes to: a recipient partner's (event_recipients) whose
-- subscribed types include the event's public type. The fan-out and the replay both use it.
CREATE FUNCTION webhooks.event_endpoints(p_event_id bigint) RETURNS SETOF bigint
LANGUAGE sql STABLE AS $$
    SELECT e.endpoint_id
    FROM event_outbox o
    JOIN webhooks.endpoint e ON e.enabled
        AND webhooks.public_type(o.event_type) = ANY (e.event_types)
    WHERE o.event_id = p_event_id
      AND e.partner_id IN (SELECT webhooks.event_recipients(p_event_id))
$$;

-- purchase.refunded / redemption.refunded: a refund row names its original; a refund of a
-- captured hold is a redemption's refund.
CREATE FUNCTION partner_refund_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_original_kind text;
    v_original_ref text;
BEGIN
    SELECT kind, partner_ref INTO STRICT v_original_kind, v_original_ref
    FROM partner_transactions WHERE id = NEW.original_id;
    INSERT INTO event_outbox (event_type, partner_id, shopper_id, payload)
    VALUES (
        CASE v_original_kind WHEN 'purchase' THEN 'purchase.refunded'
                             ELSE 'redemption.refunded' END,
        NEW.partner_id, NEW.shopper_id,
        jsonb_build_object(
            'transaction_id', NEW.id::text,
            'partner_ref', NEW.partner_ref,
            'original_transaction_id', NEW.original_id::text,
            'original_partner_ref', v_original_ref,
            'shopper_id', NEW.shopper_id,
            'points', NEW.points,
            'amount_minor', NEW.amount_minor,
            'value_minor', NEW.value_minor));
    RETURN NULL;
END $$;

CREATE TRIGGER partner_transactions_refund_event AFTER INSERT ON partner_transactions
    FOR EACH ROW WHEN (NEW.kind = 'refund') EXECUTE FUNCTION partner_refund_event();

-- hold.captured / hold.voided: the hold's row leaves 'open' (SETTLE_HOLD, 0094, 0098).
CREATE FUNCTION partner_hold_settled_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_outbox (event_type, partner_id, shopper_id, payload)
    VALUES (
        'hold.' || NEW.status, NEW.partner_id, NEW.shopper_id,
        jsonb_build_object(
            'transaction_id', NEW.id::text,
            'partner_ref', NEW.partner_ref,
            'shopper_id', NEW.shopper_id,
            'points', NEW.points,
            'points_captured', NEW.points_captured,
            'value_minor', NEW.value_minor));
    RETURN NULL;
END $$;

CREATE TRIGGER partner_transactions_hold_settled_event AFTER UPDATE OF status
    ON partner_transactions
    FOR EACH ROW
    WHEN (NEW.kind = 'hold' AND OLD.status = 'open' AND NEW.status IN ('captured', 'voided'))
    EXECUTE FUNCTION partner_hold_settled_event();

-- hold.expired: the ledger's expiry worker released the hold (its partner row stays as the
-- partner left it; the event names the partner's transaction and reference).
CREATE FUNCTION partner_hold_expired_event() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    t partner_transactions;
BEGIN
    SELECT * INTO t FROM partner_transactions
    WHERE shopper_id = NEW.shopper_id AND partner_id = NEW.partner_id
      AND kind = 'hold' AND ledger_hold_id = NEW.hold_id;
    IF NOT FOUND THEN
        RETURN NULL;  -- a ledger-level hold no partner placed (tests, tools): nobody to tell
    END IF;
    INSERT INTO event_outbox (event_type, partner_id, shopper_id, payload)
    VALUES (
        'hold.expired', t.partner_id, t.shopper_id,
        jsonb_build_object(
            'transaction_id', t.id::text,
            'partner_ref', t.partner_ref,
            'shopper_id', t.shopper_id,
            'points', t.points,
            'expired_at', to_char(NEW.expires_at AT TIME ZONE 'UTC',
                                  'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')));
    RETURN NULL;
END $$;

CREATE TRIGGER hold_expired_event AFTER UPDATE OF state ON ledger.hold
    FOR EACH ROW WHEN (OLD.state = 'open' AND NEW.state = 'expired')
    EXECUTE FUNCTION partner_hold_expired_event();
