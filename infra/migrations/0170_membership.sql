-- Paid membership ("Plus", issue 19): operator plans, memberships sold by partners, their
-- money in the ledger, the monthly bonus grants, and the statement's own membership line.
-- Money flow and rules: docs/membership.md. No existing purchase-path function is redefined:
-- the benefit's extra points ride the purchase's network-paid (marketing) leg.

-- Network settings: the sales commission a selling partner keeps when a plan names none, and
-- the issue price of points the network grants without a purchase (the monthly bonus).
ALTER TABLE network_settings
    ADD COLUMN membership_commission_bps integer NOT NULL DEFAULT 1000
        CHECK (membership_commission_bps BETWEEN 0 AND 10000),
    ADD COLUMN default_issue_price_micros bigint NOT NULL DEFAULT 10000
        CHECK (default_issue_price_micros > 0);

-- A plan version is immutable once created (a trigger refuses updates other than retiring
-- it): a change is a new version under the same code, and the older version stops selling.
CREATE TABLE membership_plans (
    id                    bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code                  text        NOT NULL CHECK (code ~ '^[a-z0-9][a-z0-9_-]{0,31}$'),
    version               integer     NOT NULL CHECK (version >= 1),
    name                  text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    price_minor           bigint      NOT NULL CHECK (price_minor > 0),
    currency              char(3)     NOT NULL,
    term                  text        NOT NULL CHECK (term IN ('monthly', 'yearly')),
    earn_multiplier_bps   integer     NOT NULL CHECK (earn_multiplier_bps BETWEEN 10000 AND 50000),
    monthly_bonus_points  bigint      NOT NULL CHECK (monthly_bonus_points BETWEEN 0 AND 1000000),
    tier_floor            text,
    perks                 text[]      NOT NULL DEFAULT '{}' CHECK (cardinality(perks) <= 20),
    commission_bps        integer     CHECK (commission_bps BETWEEN 0 AND 10000),
    created_by            text        NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    retired_at            timestamptz,
    UNIQUE (code, version)
);

CREATE FUNCTION membership_plan_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'membership plans are immutable' USING ERRCODE = 'CL002';
    END IF;
    IF (to_jsonb(NEW) - 'retired_at') IS DISTINCT FROM (to_jsonb(OLD) - 'retired_at')
       OR OLD.retired_at IS NOT NULL THEN
        RAISE EXCEPTION 'membership plans are immutable' USING ERRCODE = 'CL002';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER membership_plan_guard BEFORE UPDATE OR DELETE ON membership_plans
    FOR EACH ROW EXECUTE FUNCTION membership_plan_guard();

-- A membership: sold by one partner to one shopper, on one plan version, for consecutive terms.
-- period_start/period_end: the term in force; a shopper has at most one active membership.
CREATE TABLE memberships (
    id                 bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    plan_id            bigint      NOT NULL REFERENCES membership_plans (id),
    shopper_id         bigint      NOT NULL REFERENCES shoppers (id),
    partner_id         bigint      NOT NULL REFERENCES partners (id),
    partner_ref        text        NOT NULL CHECK (length(partner_ref) BETWEEN 1 AND 64),
    status             text        NOT NULL CHECK (status IN ('active', 'cancelled', 'expired')),
    auto_renew         boolean     NOT NULL,
    started_at         timestamptz NOT NULL,
    period_no          integer     NOT NULL DEFAULT 0 CHECK (period_no >= 0),
    period_start       timestamptz NOT NULL,
    period_end         timestamptz NOT NULL CHECK (period_end > period_start),
    reminded_period_no integer,
    -- when the next monthly bonus falls due (NULL: the plan has none)
    bonus_next_month   integer     NOT NULL DEFAULT 0,
    bonus_next_at      timestamptz,
    cancelled_at       timestamptz,
    cancelled_by       text,
    cancel_reason      text        CHECK (length(cancel_reason) <= 200),
    created_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (partner_id, partner_ref),
    CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL))
);
CREATE UNIQUE INDEX memberships_one_active ON memberships (shopper_id) WHERE status = 'active';
CREATE INDEX memberships_due ON memberships (period_end) WHERE status = 'active';
CREATE INDEX memberships_bonus_due ON memberships (bonus_next_at)
    WHERE status = 'active' AND bonus_next_at IS NOT NULL;

-- Every money movement of a membership, each with the ledger entry that carries it:
-- a sale or renewal charges fee_minor of which the seller keeps commission_minor; a refund
-- gives back fee_minor and takes back commission_minor. `coalition verify` reconciles these
-- rows with the ledger entries (ledger/verify.py).
CREATE TABLE membership_charges (
    membership_id    bigint      NOT NULL REFERENCES memberships (id),
    period_no        integer     NOT NULL CHECK (period_no >= 0),
    kind             text        NOT NULL CHECK (kind IN ('sale', 'renewal', 'refund')),
    partner_id       bigint      NOT NULL,
    fee_minor        bigint      NOT NULL CHECK (fee_minor >= 0),
    commission_minor bigint      NOT NULL CHECK (commission_minor BETWEEN 0 AND fee_minor),
    commission_bps   integer     NOT NULL CHECK (commission_bps BETWEEN 0 AND 10000),
    ledger_entry_id  bigint,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (membership_id, period_no, kind)
);

-- The monthly bonus: month k of a membership (due at started_at + k months), granted once.
CREATE TABLE membership_bonus_grants (
    membership_id     bigint      NOT NULL REFERENCES memberships (id),
    month_no          integer     NOT NULL CHECK (month_no >= 0),
    points            bigint      NOT NULL CHECK (points > 0),
    ledger_entry_id   bigint      NOT NULL,
    reversal_entry_id bigint,
    granted_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (membership_id, month_no)
);

-- The benefit's extra points are a purchase breakdown item of their own.
ALTER TABLE purchase_breakdown DROP CONSTRAINT purchase_breakdown_kind_check;
ALTER TABLE purchase_breakdown ADD CONSTRAINT purchase_breakdown_kind_check
    CHECK (kind IN ('base', 'tier_bonus', 'campaign', 'referral', 'membership'));

-- The ledger: two network revenue accounts and the entry kinds that move them.
ALTER TABLE ledger.account DROP CONSTRAINT account_check;
ALTER TABLE ledger.account ADD CONSTRAINT account_check CHECK (
    (owner_kind = 'shopper' AND purpose IN ('wallet', 'held') AND asset = 'PTS' AND NOT rollup)
    OR (owner_kind = 'partner' AND purpose = 'settlement' AND asset <> 'PTS' AND rollup)
    OR (owner_kind = 'network' AND owner_id = 0 AND rollup AND (
        (purpose = 'points_issued' AND asset = 'PTS')
        OR (purpose IN ('deferred_revenue', 'redemption_margin', 'breakage', 'bank',
                        'marketing', 'points_debt', 'membership_fees',
                        'membership_commission') AND asset <> 'PTS')))
);
ALTER TABLE ledger.entry DROP CONSTRAINT entry_kind_check;
ALTER TABLE ledger.entry ADD CONSTRAINT entry_kind_check CHECK (kind IN (
    'earn', 'goodwill', 'goodwill_debit', 'burn', 'hold', 'capture', 'void', 'hold_release',
    'expiry', 'refund_earn', 'refund_burn', 'transfer', 'settlement_payment',
    'membership_fee', 'membership_refund'));

-- A membership fee collected by a partner (p_kind 'membership_fee'): the partner owes the fee
-- minus its commission; or a refund of part of it (p_kind 'membership_refund', correcting the
-- charge's entry): the reverse. Amounts in micros, both >= 0, commission <= fee.
--   fee:    partner.settlement +(fee - commission), membership_fees -fee, membership_commission +commission
--   refund: partner.settlement -(fee - commission), membership_fees +fee, membership_commission -commission
CREATE FUNCTION ledger.membership_charge(p_key text, p_kind text, p_partner bigint,
                                         p_fee_micros bigint, p_commission_micros bigint,
                                         p_corrects bigint, p_metadata jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_args jsonb;
    v_replay jsonb;
    v_entry bigint;
    v_sign bigint;
BEGIN
    PERFORM ledger._require(p_kind IN ('membership_fee', 'membership_refund'), 'kind',
                            'membership_fee or membership_refund');
    PERFORM ledger._require(p_partner IS NOT NULL, 'partner_id', 'required');
    PERFORM ledger._require(p_fee_micros > 0, 'fee_micros', 'must be positive');
    PERFORM ledger._require(p_commission_micros BETWEEN 0 AND p_fee_micros, 'commission_micros',
                            'between 0 and the fee');
    PERFORM ledger._require((p_kind = 'membership_refund') = (p_corrects IS NOT NULL),
                            'corrects_entry_id', 'a refund names the charge it corrects');
    v_args := jsonb_build_object('partner_id', p_partner, 'fee_micros', p_fee_micros,
                                 'commission_micros', p_commission_micros,
                                 'corrects_entry_id', p_corrects,
                                 'amount_micros', p_fee_micros - p_commission_micros,
                                 'metadata', coalesce(p_metadata, '{}'::jsonb));
    v_replay := ledger._claim(p_key, p_kind, v_args);
    IF v_replay IS NOT NULL THEN
        RETURN v_replay;
    END IF;
    v_sign := CASE p_kind WHEN 'membership_fee' THEN 1 ELSE -1 END;
    v_entry := ledger._entry(p_kind, p_key, NULL, p_partner, p_corrects, v_args, p_metadata);
    PERFORM ledger._post(v_entry, ledger._account('partner', p_partner, 'settlement'),
                         v_sign * (p_fee_micros - p_commission_micros));
    PERFORM ledger._post(v_entry, ledger._network('membership_fees'), -v_sign * p_fee_micros);
    PERFORM ledger._post(v_entry, ledger._network('membership_commission'),
                         v_sign * p_commission_micros);
    RETURN ledger._finish(p_key, v_entry, p_kind, NULL,
        jsonb_build_object('amount_micros', v_sign * (p_fee_micros - p_commission_micros)));
END $$;

-- The statement's membership line: fees net of commission (and their refunds), moved out of
-- adjustments. The figure checks are extended so the line stays tied to the closing balance
-- (the immutability guard leaves these two columns out; a change to membership_micros alone
-- breaks statement_closing, and every other figure is guarded).
ALTER TABLE settlement.statement
    ADD COLUMN membership_count bigint NOT NULL DEFAULT 0 CHECK (membership_count >= 0),
    ADD COLUMN membership_micros bigint NOT NULL DEFAULT 0;
ALTER TABLE settlement.statement DROP CONSTRAINT statement_closing;
ALTER TABLE settlement.statement ADD CONSTRAINT statement_closing CHECK (
    closing_balance_micros = opening_balance_micros + issued_micros + redeemed_micros
        + refunds_micros + adjustments_micros + membership_micros + payments_micros);
ALTER TABLE settlement.statement DROP CONSTRAINT statement_carried;
ALTER TABLE settlement.statement ADD CONSTRAINT statement_carried CHECK (
    carried_out_micros = carried_in_micros + issued_micros + redeemed_micros + refunds_micros
        + adjustments_micros + membership_micros - payment_due_micros
    AND abs(carried_out_micros) < minor_unit_micros);
