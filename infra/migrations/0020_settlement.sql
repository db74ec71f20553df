-- Settlement and reconciliation (issue 5). Model: DESIGN.md, "Settlement and reconciliation";
-- the code that writes these tables: ledger/settlement.py and ledger/reconciliation.py.
--
-- Period assignment. A period is [period_start, period_end). Closing it stamps every journal
-- entry that is committed, not yet stamped, and created before period_end with the period's
-- id (settlement.entry_period, entry_id is the primary key: at most one period per entry).
-- Closes serialize on one advisory lock and run in READ COMMITTED, so each close sees the
-- stamps of the previous one. An entry that commits after a close began, with a created_at
-- before that period's end, is stamped by the next close: it lands in the next period, never
-- in none and never in two. Neither created_at nor entry_id is used as a watermark (sequence
-- order is not commit order); the close's snapshot (pg_current_snapshot) only narrows the
-- scan: an entry whose txid precedes the previous close's xmin, created before that close's
-- period_end, was visible to that close and is therefore stamped already.

CREATE SCHEMA settlement;

-- Cycle: when periods end. Cut at midnight in network_settings.time_zone.
CREATE TABLE settlement.cycle (
    singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    cadence    text        NOT NULL DEFAULT 'daily' CHECK (cadence IN ('daily', 'weekly', 'monthly')),
    updated_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO settlement.cycle DEFAULT VALUES;

CREATE TABLE settlement.period (
    period_id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    period_start       timestamptz,            -- NULL: the beginning of the journal
    period_end         timestamptz NOT NULL UNIQUE,
    currency           text        NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    minor_unit_micros  bigint      NOT NULL CHECK (minor_unit_micros > 0),
    -- The close's snapshot, taken after the lock and before the stamping statement.
    close_snapshot     pg_snapshot NOT NULL,
    closed_by          text        NOT NULL,
    closed_at          timestamptz NOT NULL DEFAULT now(),
    CHECK (period_start IS NULL OR period_start < period_end)
);

CREATE TABLE settlement.entry_period (
    entry_id  bigint PRIMARY KEY,
    period_id bigint NOT NULL REFERENCES settlement.period
);
CREATE INDEX entry_period_period ON settlement.entry_period (period_id, entry_id);

-- Narrow the close's scan of the journal (see above) and serve range reports. Additive
-- indexes on the ledger's table; the ledger itself does not use them.
CREATE INDEX entry_settlement_txid ON ledger.entry (txid);
CREATE INDEX entry_settlement_created ON ledger.entry (created_at);

-- One immutable statement per partner settlement account per period. Amounts are signed
-- as posted to the partner's settlement account: positive, the partner owes the network.
CREATE TABLE settlement.statement (
    statement_id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    period_id                bigint      NOT NULL REFERENCES settlement.period,
    partner_id               bigint      NOT NULL,
    opening_balance_micros   bigint      NOT NULL,
    issued_count             bigint      NOT NULL CHECK (issued_count >= 0),
    issued_points            bigint      NOT NULL,
    issued_micros            bigint      NOT NULL,
    redeemed_count           bigint      NOT NULL CHECK (redeemed_count >= 0),
    redeemed_points          bigint      NOT NULL,
    redeemed_micros          bigint      NOT NULL,
    refunds_count            bigint      NOT NULL CHECK (refunds_count >= 0),
    refunds_micros           bigint      NOT NULL,
    adjustments_count        bigint      NOT NULL CHECK (adjustments_count >= 0),
    adjustments_micros       bigint      NOT NULL,
    payments_micros          bigint      NOT NULL,
    closing_balance_micros   bigint      NOT NULL,
    carried_in_micros        bigint      NOT NULL,
    payment_due_micros       bigint      NOT NULL,
    carried_out_micros       bigint      NOT NULL,
    minor_unit_micros        bigint      NOT NULL CHECK (minor_unit_micros > 0),
    state                    text        NOT NULL DEFAULT 'draft'
                                         CHECK (state IN ('draft', 'final', 'paid', 'disputed')),
    state_changed_by         text,
    state_changed_at         timestamptz,
    state_reason             text,
    payment_entry_id         bigint,
    created_at               timestamptz NOT NULL DEFAULT now(),
    UNIQUE (period_id, partner_id),
    CONSTRAINT statement_closing CHECK (closing_balance_micros = opening_balance_micros
        + issued_micros + redeemed_micros + refunds_micros + adjustments_micros + payments_micros),
    CONSTRAINT statement_rounded CHECK (payment_due_micros % minor_unit_micros = 0),
    CONSTRAINT statement_carried CHECK (carried_out_micros = carried_in_micros + issued_micros
        + redeemed_micros + refunds_micros + adjustments_micros - payment_due_micros
        AND abs(carried_out_micros) < minor_unit_micros),
    CONSTRAINT statement_paid CHECK (state <> 'paid' OR payment_due_micros = 0
                                     OR payment_entry_id IS NOT NULL)
);
CREATE INDEX statement_partner ON settlement.statement (partner_id, statement_id);

-- The network's own lines per period: every network money account the period's entries
-- touched (redemption margin, breakage, deferred revenue, bank, marketing, points debt).
CREATE TABLE settlement.network_line (
    period_id     bigint NOT NULL REFERENCES settlement.period,
    account       text   NOT NULL,
    amount_micros bigint NOT NULL,
    PRIMARY KEY (period_id, account)
);

-- Immutability: figures never change; only the lifecycle columns move, and only forward.
CREATE FUNCTION settlement._statement_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'settlement statements are immutable' USING ERRCODE = 'CL002';
    END IF;
    IF (NEW.statement_id, NEW.period_id, NEW.partner_id, NEW.opening_balance_micros,
        NEW.issued_count, NEW.issued_points, NEW.issued_micros, NEW.redeemed_count,
        NEW.redeemed_points, NEW.redeemed_micros, NEW.refunds_count, NEW.refunds_micros,
        NEW.adjustments_count, NEW.adjustments_micros, NEW.payments_micros,
        NEW.closing_balance_micros, NEW.carried_in_micros, NEW.payment_due_micros,
        NEW.carried_out_micros, NEW.minor_unit_micros, NEW.created_at)
       IS DISTINCT FROM
       (OLD.statement_id, OLD.period_id, OLD.partner_id, OLD.opening_balance_micros,
        OLD.issued_count, OLD.issued_points, OLD.issued_micros, OLD.redeemed_count,
        OLD.redeemed_points, OLD.redeemed_micros, OLD.refunds_count, OLD.refunds_micros,
        OLD.adjustments_count, OLD.adjustments_micros, OLD.payments_micros,
        OLD.closing_balance_micros, OLD.carried_in_micros, OLD.payment_due_micros,
        OLD.carried_out_micros, OLD.minor_unit_micros, OLD.created_at) THEN
        RAISE EXCEPTION 'settlement statement figures are immutable' USING ERRCODE = 'CL002';
    END IF;
    IF NOT ((OLD.state, NEW.state) IN (('draft', 'final'), ('draft', 'disputed'),
                                       ('final', 'paid'), ('final', 'disputed'),
                                       ('disputed', 'final'))
            OR OLD.state = NEW.state AND OLD.state <> 'paid') THEN
        RAISE EXCEPTION 'statement cannot move from % to %', OLD.state, NEW.state
            USING ERRCODE = 'CL002';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER statement_guard BEFORE UPDATE OR DELETE ON settlement.statement
    FOR EACH ROW EXECUTE FUNCTION settlement._statement_guard();

CREATE FUNCTION settlement._refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'CL002';
END $$;
CREATE TRIGGER period_append_only BEFORE UPDATE OR DELETE ON settlement.period
    FOR EACH ROW EXECUTE FUNCTION settlement._refuse_change();
CREATE TRIGGER entry_period_append_only BEFORE UPDATE OR DELETE ON settlement.entry_period
    FOR EACH ROW EXECUTE FUNCTION settlement._refuse_change();
CREATE TRIGGER network_line_append_only BEFORE UPDATE OR DELETE ON settlement.network_line
    FOR EACH ROW EXECUTE FUNCTION settlement._refuse_change();

-- Reconciliation ------------------------------------------------------------------------------

CREATE TABLE settlement.reconciliation (
    reconciliation_id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partner_id               bigint      NOT NULL,
    period_start             timestamptz NOT NULL,
    period_end               timestamptz NOT NULL CHECK (period_start < period_end),
    source_format            text        NOT NULL CHECK (source_format IN ('csv', 'jsonl')),
    lines_total              bigint      NOT NULL DEFAULT 0,
    matched                  bigint      NOT NULL DEFAULT 0,
    missing_in_network       bigint      NOT NULL DEFAULT 0,
    missing_at_partner       bigint      NOT NULL DEFAULT 0,
    mismatched_points        bigint      NOT NULL DEFAULT 0,
    mismatched_amount        bigint      NOT NULL DEFAULT 0,
    mismatched_other         bigint      NOT NULL DEFAULT 0,
    duplicates               bigint      NOT NULL DEFAULT 0,
    malformed                bigint      NOT NULL DEFAULT 0,
    partner_points_total     bigint      NOT NULL DEFAULT 0,
    network_points_total     bigint      NOT NULL DEFAULT 0,
    partner_amount_minor_total bigint    NOT NULL DEFAULT 0,
    network_amount_minor_total bigint    NOT NULL DEFAULT 0,
    created_at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reconciliation_partner ON settlement.reconciliation (partner_id, reconciliation_id);

-- The differences only (matched lines are counted, not stored). item_no orders the report:
-- file lines by line number, then what is missing at the partner.
CREATE TABLE settlement.reconciliation_item (
    reconciliation_id bigint      NOT NULL REFERENCES settlement.reconciliation,
    item_no           bigint      NOT NULL CHECK (item_no > 0),
    status            text        NOT NULL CHECK (status IN ('missing_in_network',
                                      'missing_at_partner', 'mismatched', 'duplicate',
                                      'malformed')),
    line_no           bigint,     -- NULL for missing_at_partner
    partner_ref       text,
    mismatch          text[]      NOT NULL DEFAULT '{}',
    detail            text,
    partner_type      text,
    partner_card      text,
    partner_points    bigint,
    partner_amount_minor bigint,
    partner_occurred_at timestamptz,
    network_transaction_id uuid,
    network_type      text,
    network_card      text,
    network_points    bigint,
    network_amount_minor bigint,
    network_occurred_at timestamptz,
    resolution        text        CHECK (resolution IN ('adjusted', 'explained')),
    resolution_reason text,
    resolved_by       text,
    resolved_at       timestamptz,
    adjustment_entry_id bigint,
    PRIMARY KEY (reconciliation_id, item_no),
    CHECK ((resolution IS NULL) = (resolved_at IS NULL)),
    CHECK ((resolution = 'adjusted') = (adjustment_entry_id IS NOT NULL))
);

-- Every resolution, who, when and why; append-only.
CREATE TABLE settlement.reconciliation_audit (
    audit_id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reconciliation_id bigint      NOT NULL,
    item_no           bigint      NOT NULL,
    action            text        NOT NULL CHECK (action IN ('adjusted', 'explained')),
    actor             text        NOT NULL,
    reason            text        NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
    adjustment_entry_id bigint,
    at                timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (reconciliation_id, item_no)
        REFERENCES settlement.reconciliation_item (reconciliation_id, item_no)
);
CREATE TRIGGER reconciliation_audit_append_only BEFORE UPDATE OR DELETE
    ON settlement.reconciliation_audit
    FOR EACH ROW EXECUTE FUNCTION settlement._refuse_change();
