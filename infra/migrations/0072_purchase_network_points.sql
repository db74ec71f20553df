-- Network-paid points of a purchase, so that a refund can take them back (issue 6 review).
-- A purchase's network campaigns are credited by one goodwill entry paid by
-- network:marketing (partners/operations.py, ledger key 'partner:{id}:{ref}:network'); the
-- referral bonus is not counted here (it rewards bringing the friend, not the basket, and a
-- refund never takes it back).
--   purchase rows: network_points = the network campaign points credited,
--                  network_entry_id = that goodwill entry;
--   refund rows:   network_points = the network campaign points taken back by this refund,
--                  network_entry_id = the refund_earn entry that took them.
ALTER TABLE partner_transactions
    ADD COLUMN network_points   bigint NOT NULL DEFAULT 0 CHECK (network_points >= 0),
    ADD COLUMN network_entry_id bigint,
    ADD CONSTRAINT partner_transactions_network_entry
        CHECK ((network_entry_id IS NULL) = (network_points = 0));

-- Purchases recorded before this migration: find their network entry by its ledger key.
UPDATE partner_transactions t
SET network_points = (e.args ->> 'points')::bigint, network_entry_id = e.entry_id
FROM ledger.operation o
JOIN ledger.entry e ON e.entry_id = o.entry_id
WHERE t.kind = 'purchase'
  AND o.idempotency_key = 'partner:' || t.partner_id || ':' || t.partner_ref || ':network'
  AND e.kind = 'goodwill';
