-- Issue 18: the per-row triggers of the hot write path fire once per statement instead.
-- A group commit writes ~12 purchases per statement (0093-0098): 48 postings, 12 partner
-- transactions, 12 events. Each row trigger below called its PL/pgSQL function, and ran its
-- query, once per row; as a statement trigger over the statement's transition table it runs
-- once per statement, its query set-based. Same rows queued, same refusals:
--   * posting_in_entry_tx (guard, ledger.verify's GUARD_TRIGGERS: same name): every posting's
--     entry was created in the current transaction, else ledger._fail
--     ('posting_outside_entry_transaction', {entry_id}) for the first such posting. It was
--     BEFORE ROW; a transition table exists only AFTER, and the statement's row-level AFTER
--     events (the foreign key checks) fire before a statement trigger, so the posting ->
--     entry foreign key is checked at commit (DEFERRABLE INITIALLY DEFERRED): a posting to a
--     missing entry is still refused by the guard first, as before. The key stays (defence in
--     depth; the guard already implies it, and entries are never deleted).
--   * partner_transactions_aggregate, purchase_lines_aggregate (0060): the aggregate queue.
--     PostgreSQL allows no transition table on a trigger with a column list, so the capture
--     branch (UPDATE OF status) is a row trigger of its own, with its condition as WHEN.
--   * event_outbox_webhooks (0100), event_outbox_challenges (0180): the fan-out and challenge
--     queues.
-- Kept per row, on purpose:
--   * ledger.entry_balanced: a constraint trigger (only those can wait for the commit, and
--     they are row-level only), and entries' postings come in many statements (ledger._post
--     inserts one posting per statement), so a statement sees only part of an entry.
--   * event_outbox_mail (0172) and partner_transactions_refund_event (0101): their WHEN
--     already keeps every purchase and redemption from calling the function at all; a
--     statement trigger would call it for every statement.
-- Row order within a statement is kept where rows get ids (ORDER BY the identity or the
-- statement's own order), so the queues fill in the order they did.

-- The guard -----------------------------------------------------------------------------------

DROP TRIGGER posting_in_entry_tx ON ledger.posting;
ALTER TABLE ledger.posting ALTER CONSTRAINT posting_entry_id_fkey DEFERRABLE INITIALLY DEFERRED;

-- One lookup per posting, by primary key (a correlated subquery, never a join the planner could
-- turn into a scan of the journal: see 0081); the refusal names the entry of the statement's
-- first bad posting, as the row trigger, which stopped there, did. (Grouping the postings by
-- entry first, one lookup per entry, measured no better for a group and worse for one earn.)
CREATE OR REPLACE FUNCTION ledger._posting_in_entry_tx() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_entry_id bigint;
BEGIN
    SELECT p.entry_id INTO v_entry_id
    FROM new_postings p
    WHERE (SELECT e.txid FROM ledger.entry e WHERE e.entry_id = p.entry_id)
          IS DISTINCT FROM pg_current_xact_id()
    ORDER BY p.posting_id
    LIMIT 1;
    IF FOUND THEN
        PERFORM ledger._fail('posting_outside_entry_transaction',
            jsonb_build_object('entry_id', v_entry_id));
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER posting_in_entry_tx AFTER INSERT ON ledger.posting
    REFERENCING NEW TABLE AS new_postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger._posting_in_entry_tx();

-- The aggregate queue (0060) ------------------------------------------------------------------

DROP TRIGGER partner_transactions_aggregate ON partner_transactions;
DROP TRIGGER purchase_lines_aggregate ON purchase_lines;

CREATE OR REPLACE FUNCTION aggregate_enqueue_transaction() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- purchase, redemption, and a refund of either; an open hold burns nothing yet: its
    -- capture does (aggregate_enqueue_capture).
    INSERT INTO aggregate_delta (shopper_id, partner_id, occurred_at, spend_minor, visits,
                                 points_earned, points_burned)
    SELECT t.shopper_id, t.partner_id, t.created_at,
           CASE WHEN t.kind = 'purchase' THEN coalesce(t.amount_minor, 0)
                WHEN t.original_kind = 'purchase' THEN -coalesce(t.amount_minor, 0)
                ELSE 0 END,
           CASE WHEN t.kind = 'purchase' THEN 1 ELSE 0 END,
           CASE WHEN t.kind = 'purchase' THEN t.points
                WHEN t.original_kind = 'purchase' THEN -t.points
                ELSE 0 END,
           CASE WHEN t.kind = 'redemption' THEN t.points
                WHEN t.original_kind <> 'purchase' THEN -t.points
                ELSE 0 END
    FROM (
        -- A refund's original by primary key, only for refunds (a correlated subquery: a join
        -- may be planned as a scan of the whole table, and 0097 prices seq scans out).
        SELECT n.shopper_id, n.partner_id, n.created_at, n.kind, n.amount_minor, n.points,
               CASE WHEN n.kind = 'refund' THEN (
                   SELECT o.kind FROM partner_transactions o WHERE o.id = n.original_id)
               END AS original_kind,
               row_number() OVER () AS k
        FROM new_transactions n
        WHERE n.kind IN ('purchase', 'redemption', 'refund')
    ) t
    WHERE t.kind IN ('purchase', 'redemption') OR t.original_kind IS NOT NULL
    ORDER BY t.k;
    RETURN NULL;
END $$;

CREATE TRIGGER partner_transactions_aggregate AFTER INSERT ON partner_transactions
    REFERENCING NEW TABLE AS new_transactions
    FOR EACH STATEMENT EXECUTE FUNCTION aggregate_enqueue_transaction();

CREATE FUNCTION aggregate_enqueue_capture() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO aggregate_delta (shopper_id, partner_id, occurred_at, points_burned)
    VALUES (NEW.shopper_id, NEW.partner_id, now(), NEW.points_captured);
    RETURN NULL;
END $$;

CREATE TRIGGER partner_transactions_aggregate_capture
    AFTER UPDATE OF status ON partner_transactions
    FOR EACH ROW
    WHEN (NEW.kind = 'hold' AND NEW.status = 'captured' AND OLD.status <> 'captured')
    EXECUTE FUNCTION aggregate_enqueue_capture();

CREATE OR REPLACE FUNCTION aggregate_enqueue_line() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO aggregate_delta (shopper_id, partner_id, category, occurred_at, spend_minor)
    SELECT l.shopper_id, l.partner_id, l.category, now(), l.amount_minor
    FROM (SELECT n.*, row_number() OVER () AS k FROM new_lines n) l
    ORDER BY l.k;
    RETURN NULL;
END $$;

CREATE TRIGGER purchase_lines_aggregate AFTER INSERT ON purchase_lines
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION aggregate_enqueue_line();

-- The outbox's queues (0100, 0180) ------------------------------------------------------------

DROP TRIGGER event_outbox_webhooks ON event_outbox;
DROP TRIGGER event_outbox_challenges ON event_outbox;

-- Only what an enabled endpoint could receive (0100's rule): with no endpoint, one probe.
CREATE OR REPLACE FUNCTION webhooks.queue_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM webhooks.endpoint e WHERE e.enabled) THEN
        INSERT INTO webhooks.fanout_queue (event_id)
        SELECT n.event_id FROM new_events n
        WHERE EXISTS (
            SELECT 1 FROM webhooks.endpoint e
            WHERE e.enabled AND (n.partner_id IS NULL OR e.partner_id = n.partner_id))
        ORDER BY n.event_id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER event_outbox_webhooks AFTER INSERT ON event_outbox
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION webhooks.queue_event();

-- 0180's WHEN is now the function's filter.
CREATE OR REPLACE FUNCTION challenge_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM challenges
               WHERE ends_at > now() - make_interval(days => challenge_clawback_days())
                 AND starts_at <= now()) THEN
        INSERT INTO challenge_queue (event_id, shopper_id, occurred_at)
        SELECT n.event_id, n.shopper_id, n.occurred_at FROM new_events n
        WHERE n.shopper_id IS NOT NULL AND n.event_type IN
              ('purchase.recorded', 'purchase.created', 'purchase.refunded',
               'challenge.budget_freed')
        ORDER BY n.event_id
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER event_outbox_challenges AFTER INSERT ON event_outbox
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION challenge_enqueue();
