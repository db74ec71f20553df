-- The posting-in-entry-transaction guard looked the entry up by (entry_id, txid); once
-- ledger.entry has statistics the planner may use the txid index (0020) instead, and each
-- posting then rescans every entry of its own transaction: quadratic in a transaction that
-- holds many entries (a batch, a bulk load). Look up by primary key only, compare in PL/pgSQL.
CREATE OR REPLACE FUNCTION ledger._posting_in_entry_tx() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    entry_txid xid8;
BEGIN
    SELECT e.txid INTO entry_txid FROM ledger.entry e WHERE e.entry_id = NEW.entry_id;
    IF entry_txid IS DISTINCT FROM pg_current_xact_id() THEN
        PERFORM ledger._fail('posting_outside_entry_transaction',
            jsonb_build_object('entry_id', NEW.entry_id));
    END IF;
    RETURN NEW;
END $$;
