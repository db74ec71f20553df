-- challenge.completed and challenge.award_revoked are public (issue 19): a partner challenge's
-- events go to its sponsor's webhooks (the event's partner_id); a network challenge's to nobody.
-- The same rule as contracts.events.public_type (tests/integration/test_public_events.py);
-- it keeps the membership types of 0171, and a later migration adding types must keep these.
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
            'membership.sold', 'membership.renewed', 'membership.cancelled',
            'challenge.completed', 'challenge.award_revoked'])
            THEN p_outbox_type END
    END
$$;
