-- The membership events are public (contracts/events.py): the SQL rule names them too.
-- Redefines webhooks.public_type (0101) with the three membership types appended; a
-- migration that adds other public types must keep these (tests/integration/
-- test_public_events.py compares the rule with the catalogue).
CREATE OR REPLACE FUNCTION webhooks.public_type(p_outbox_type text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_outbox_type
        WHEN 'purchase.recorded' THEN 'purchase.created'
        WHEN 'redemption.recorded' THEN 'redemption.created'
        ELSE CASE WHEN p_outbox_type = ANY (ARRAY[
            'purchase.created', 'purchase.refunded', 'redemption.created',
            'redemption.refunded', 'hold.captured', 'hold.voided', 'hold.expired',
            'statement.ready', 'statement.finalized', 'statement.paid', 'statement.disputed',
            'reconciliation.completed', 'shopper.erased', 'points.expiring',
            'membership.sold', 'membership.renewed', 'membership.cancelled'])
            THEN p_outbox_type END
    END
$$;
