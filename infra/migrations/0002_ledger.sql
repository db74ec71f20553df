-- The double-entry ledger (issue 3). Accounting model: DESIGN.md, "Money and points".
--
-- Shape of a request: the Python service calls exactly one function below (one round trip).
-- Each function claims its idempotency key, locks the one shopper wallet row it touches (two
-- for a transfer, lower shopper_id first), appends one journal entry with its postings, and
-- returns the result as jsonb. Network and partner balances are never locked in a request:
-- their postings also go to ledger.balance_delta, folded later by ledger.fold_deltas().
--
-- Domain errors are raised with SQLSTATE CL001, MESSAGE = a stable snake_case code and
-- DETAIL = a jsonb object; ledger/errors.py maps them to exception classes in one place.

CREATE SCHEMA ledger;

-- Accounts ---------------------------------------------------------------------------------

CREATE TABLE ledger.account (
    account_id  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_kind  text        NOT NULL CHECK (owner_kind IN ('shopper', 'partner', 'network')),
    owner_id    bigint      NOT NULL CHECK (owner_id >= 0),   -- 0 for the network itself
    purpose     text        NOT NULL,
    asset       text        NOT NULL CHECK (asset ~ '^[A-Z]{3}$'),
    -- Constraint flags. A floor means the balance lives in a locked row (ledger.wallet) and
    -- is checked in the request path; rollup accounts have no floor and are folded later.
    floor_rule  text        NOT NULL CHECK (floor_rule IN
                                ('none', 'non_negative', 'non_negative_except_clawback')),
    rollup      boolean     NOT NULL,
    name        text        GENERATED ALWAYS AS (
                    CASE WHEN owner_kind = 'network' THEN 'network:' || purpose
                         ELSE owner_kind || ':' || owner_id::text || ':' || purpose END
                ) STORED,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (owner_kind, owner_id, purpose),
    UNIQUE (name),
    CHECK (
        (owner_kind = 'shopper' AND purpose IN ('wallet', 'held') AND asset = 'PTS'
            AND NOT rollup)
        OR (owner_kind = 'partner' AND purpose = 'settlement' AND asset <> 'PTS' AND rollup)
        OR (owner_kind = 'network' AND owner_id = 0 AND rollup AND (
            (purpose = 'points_issued' AND asset = 'PTS')
            OR (purpose IN ('deferred_revenue', 'redemption_margin', 'breakage', 'bank',
                            'marketing', 'points_debt') AND asset <> 'PTS')))
    )
);

-- Folded balances of rollup accounts; exact balance = balance + unfolded deltas.
CREATE TABLE ledger.account_balance (
    account_id  bigint      PRIMARY KEY,
    balance     bigint      NOT NULL,
    folded_at   timestamptz NOT NULL DEFAULT now()
);

-- The delta queue: one row per posting to a rollup account, deleted when folded.
-- Sequence order is not commit order, so the folder takes rows with SKIP LOCKED instead of
-- keeping a watermark on max(delta_id): a late commit with a lower id is never skipped.
CREATE TABLE ledger.balance_delta (
    delta_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  bigint NOT NULL,
    entry_id    bigint NOT NULL,
    amount      bigint NOT NULL CHECK (amount <> 0)
);
CREATE INDEX balance_delta_account ON ledger.balance_delta (account_id);

-- Journal ----------------------------------------------------------------------------------

CREATE TABLE ledger.entry (
    entry_id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind              text        NOT NULL CHECK (kind IN (
                          'earn', 'goodwill', 'goodwill_debit', 'burn', 'hold', 'capture',
                          'void', 'hold_release', 'expiry', 'refund_earn', 'refund_burn',
                          'transfer', 'settlement_payment')),
    idempotency_key   text,       -- NULL for entries made by workers (expiry, hold release)
    shopper_id        bigint,
    partner_id        bigint,
    corrects_entry_id bigint      REFERENCES ledger.entry,
    args              jsonb       NOT NULL,   -- canonical arguments, compared on replay
    metadata          jsonb       NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL DEFAULT now(),
    txid              xid8        NOT NULL DEFAULT pg_current_xact_id()
);
CREATE INDEX entry_corrects ON ledger.entry (corrects_entry_id) WHERE corrects_entry_id IS NOT NULL;
CREATE INDEX entry_shopper ON ledger.entry (shopper_id, entry_id) WHERE shopper_id IS NOT NULL;

CREATE TABLE ledger.posting (
    posting_id  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    entry_id    bigint      NOT NULL REFERENCES ledger.entry,
    -- No foreign key to ledger.account on purpose: the FK check takes a KEY SHARE lock on the
    -- referenced row, and every earn posts to network:points_issued; thousands of concurrent
    -- share lockers on one row turn into MultiXact churn. ledger._post() takes the account
    -- from ledger.account, accounts are never deleted, and verify() checks the reference.
    account_id  bigint      NOT NULL,
    asset       text        NOT NULL,
    amount      bigint      NOT NULL CHECK (amount <> 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX posting_entry ON ledger.posting (entry_id);
CREATE INDEX posting_account ON ledger.posting (account_id, posting_id);

-- Idempotency: one row per key, claimed (INSERT ... ON CONFLICT) in the same transaction as
-- the effect, so 50 parallel calls with one key serialize on the unique index and the losers
-- replay the winner's result.
CREATE TABLE ledger.operation (
    idempotency_key text        PRIMARY KEY CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    operation       text        NOT NULL,
    args            jsonb       NOT NULL,
    entry_id        bigint,
    result          jsonb,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Shopper-scoped state (shopper_id leads every key: Citus distribution column) --------------

CREATE TABLE ledger.wallet (
    shopper_id             bigint PRIMARY KEY CHECK (shopper_id > 0),
    wallet_account_id      bigint NOT NULL,
    held_account_id        bigint NOT NULL,
    available              bigint NOT NULL DEFAULT 0,
    held                   bigint NOT NULL DEFAULT 0 CHECK (held >= 0),
    -- Points clawed back by refunds after the shopper spent them; the wallet shows -debt_points.
    debt_points            bigint NOT NULL DEFAULT 0 CHECK (debt_points >= 0),
    debt_value_micros      bigint NOT NULL DEFAULT 0 CHECK (debt_value_micros >= 0),
    merged_into_shopper_id bigint,
    -- No overdraft; only a refund clawback may take the wallet below zero, and then free lot
    -- points are netted against the debt at once, so a wallet in debt shows exactly -debt.
    CONSTRAINT wallet_no_overdraft CHECK (available >= 0 OR available = -debt_points),
    CONSTRAINT wallet_debt_netted CHECK (debt_points = 0 OR available = -debt_points)
);

CREATE SEQUENCE ledger.lot_id_seq AS bigint;
CREATE TABLE ledger.lot (
    shopper_id         bigint      NOT NULL,
    lot_id             bigint      NOT NULL DEFAULT nextval('ledger.lot_id_seq'),
    root_lot_id        bigint      NOT NULL,   -- the earn's lot this one descends from
    entry_id           bigint      NOT NULL REFERENCES ledger.entry,
    partner_id         bigint,                 -- NULL: issued by the network (marketing)
    issue_price_micros bigint      NOT NULL CHECK (issue_price_micros >= 0),
    origin             text        NOT NULL CHECK (origin IN
                                       ('earn', 'goodwill', 'grace', 'transfer')),
    earned_at          timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz,            -- NULL: never expires
    points             bigint      NOT NULL CHECK (points > 0),
    remaining          bigint      NOT NULL,
    reserved           bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (shopper_id, lot_id),
    CHECK (0 <= reserved AND reserved <= remaining AND remaining <= points)
);
ALTER SEQUENCE ledger.lot_id_seq OWNED BY ledger.lot.lot_id;
CREATE INDEX lot_free ON ledger.lot (shopper_id, expires_at, lot_id) WHERE remaining > reserved;
CREATE INDEX lot_expirable ON ledger.lot (expires_at) WHERE remaining > reserved;
CREATE INDEX lot_entry ON ledger.lot (shopper_id, entry_id);
CREATE INDEX lot_root ON ledger.lot (shopper_id, root_lot_id);

CREATE SEQUENCE ledger.hold_id_seq AS bigint;
CREATE TABLE ledger.hold (
    shopper_id      bigint      NOT NULL,
    hold_id         bigint      NOT NULL DEFAULT nextval('ledger.hold_id_seq'),
    partner_id      bigint      NOT NULL,
    points          bigint      NOT NULL CHECK (points > 0),
    captured_points bigint      CHECK (captured_points > 0 AND captured_points <= points),
    state           text        NOT NULL DEFAULT 'open'
                                CHECK (state IN ('open', 'captured', 'voided', 'expired')),
    expires_at      timestamptz NOT NULL,
    entry_id        bigint      NOT NULL REFERENCES ledger.entry,
    closed_entry_id bigint      REFERENCES ledger.entry,
    PRIMARY KEY (shopper_id, hold_id),
    CHECK ((state = 'open') = (closed_entry_id IS NULL)),
    CHECK ((state = 'captured') = (captured_points IS NOT NULL))
);
ALTER SEQUENCE ledger.hold_id_seq OWNED BY ledger.hold.hold_id;
CREATE INDEX hold_by_id ON ledger.hold (hold_id);
CREATE INDEX hold_open_expiry ON ledger.hold (expires_at) WHERE state = 'open';

-- Which lot points an open hold reserves (capture consumes them at their issue prices).
CREATE TABLE ledger.hold_lot (
    shopper_id bigint NOT NULL,
    hold_id    bigint NOT NULL,
    lot_id     bigint NOT NULL,
    points     bigint NOT NULL CHECK (points > 0),
    PRIMARY KEY (shopper_id, hold_id, lot_id)
);

-- Which lots a burn or capture consumed, so a refund of it can put points back.
CREATE TABLE ledger.consumption (
    shopper_id         bigint NOT NULL,
    entry_id           bigint NOT NULL,
    lot_id             bigint NOT NULL,
    points             bigint NOT NULL CHECK (points > 0),
    issue_price_micros bigint NOT NULL CHECK (issue_price_micros >= 0),
    refunded           bigint NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= points),
    PRIMARY KEY (shopper_id, entry_id, lot_id)
);

-- Tamper evidence ---------------------------------------------------------------------------

-- Entries waiting to be sealed. A row becomes visible only when its entry commits, so the
-- sealer never chains an entry that could still roll back or commit "in the past".
CREATE TABLE ledger.seal_queue (
    entry_id bigint PRIMARY KEY
);

CREATE TABLE ledger.block (
    block_id    bigint      PRIMARY KEY CHECK (block_id > 0),
    prev_hash   bytea       NOT NULL CHECK (length(prev_hash) = 32),
    hash        bytea       NOT NULL CHECK (length(hash) = 32),
    entry_count integer     NOT NULL CHECK (entry_count > 0),
    sealed_at   timestamptz NOT NULL DEFAULT now()
);

-- Each sealed entry with its own digest, so verify() can name the entry that changed; the
-- block hash covers the digests, so the digests cannot be rewritten either.
CREATE TABLE ledger.block_entry (
    entry_id bigint PRIMARY KEY,
    block_id bigint NOT NULL REFERENCES ledger.block,
    digest   bytea  NOT NULL CHECK (length(digest) = 32)
);
CREATE INDEX block_entry_block ON ledger.block_entry (block_id);

-- Guards -------------------------------------------------------------------------------------

CREATE FUNCTION ledger._fail(p_code text, p_detail jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'CL001', MESSAGE = p_code, DETAIL = p_detail::text;
END $$;

CREATE FUNCTION ledger._refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger._fail('journal_append_only',
        jsonb_build_object('table', TG_TABLE_NAME, 'operation', TG_OP));
    RETURN NULL;
END $$;

CREATE TRIGGER entry_append_only BEFORE UPDATE OR DELETE ON ledger.entry
    FOR EACH ROW EXECUTE FUNCTION ledger._refuse_change();
CREATE TRIGGER entry_no_truncate BEFORE TRUNCATE ON ledger.entry
    FOR EACH STATEMENT EXECUTE FUNCTION ledger._refuse_change();
CREATE TRIGGER posting_append_only BEFORE UPDATE OR DELETE ON ledger.posting
    FOR EACH ROW EXECUTE FUNCTION ledger._refuse_change();
CREATE TRIGGER posting_no_truncate BEFORE TRUNCATE ON ledger.posting
    FOR EACH STATEMENT EXECUTE FUNCTION ledger._refuse_change();
CREATE TRIGGER block_append_only BEFORE UPDATE OR DELETE ON ledger.block
    FOR EACH ROW EXECUTE FUNCTION ledger._refuse_change();
CREATE TRIGGER block_no_truncate BEFORE TRUNCATE ON ledger.block
    FOR EACH STATEMENT EXECUTE FUNCTION ledger._refuse_change();
CREATE TRIGGER block_entry_append_only BEFORE UPDATE OR DELETE ON ledger.block_entry
    FOR EACH ROW EXECUTE FUNCTION ledger._refuse_change();
CREATE TRIGGER block_entry_no_truncate BEFORE TRUNCATE ON ledger.block_entry
    FOR EACH STATEMENT EXECUTE FUNCTION ledger._refuse_change();
CREATE TRIGGER account_no_delete BEFORE UPDATE OR DELETE ON ledger.account
    FOR EACH ROW EXECUTE FUNCTION ledger._refuse_change();

-- Postings belong to their entry's transaction: nothing can be added to a committed entry.
CREATE FUNCTION ledger._posting_in_entry_tx() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ledger.entry
                   WHERE entry_id = NEW.entry_id AND txid = pg_current_xact_id()) THEN
        PERFORM ledger._fail('posting_outside_entry_transaction',
            jsonb_build_object('entry_id', NEW.entry_id));
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER posting_in_entry_tx BEFORE INSERT ON ledger.posting
    FOR EACH ROW EXECUTE FUNCTION ledger._posting_in_entry_tx();

-- Invariant 1, checked at commit: every entry sums to zero per asset.
CREATE FUNCTION ledger._check_entry_balanced() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT asset, sum(amount) AS total INTO bad
    FROM ledger.posting WHERE entry_id = NEW.entry_id
    GROUP BY asset HAVING sum(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        PERFORM ledger._fail('entry_unbalanced', jsonb_build_object(
            'entry_id', NEW.entry_id, 'asset', bad.asset, 'sum', bad.total));
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER entry_balanced AFTER INSERT ON ledger.entry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger._check_entry_balanced();

-- Internal helpers ----------------------------------------------------------------------------

CREATE FUNCTION ledger._ts(p timestamptz) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(p AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- Value of `p_repay` of `p_debt_points` debt points worth `p_debt_value` micros: floor of
-- the pro-rata share, and the whole remainder on the last repayment, so nothing is left over.
-- Mirrored by ledger/_rules.py:debt_share (unit-tested there).
CREATE FUNCTION ledger._debt_share(p_debt_points bigint, p_debt_value bigint, p_repay bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_repay <= 0 THEN 0
                WHEN p_repay >= p_debt_points THEN p_debt_value
                ELSE div(p_debt_value::numeric * p_repay, p_debt_points)::bigint END
$$;

CREATE FUNCTION ledger._account(p_owner_kind text, p_owner_id bigint, p_purpose text)
RETURNS ledger.account LANGUAGE plpgsql AS $$
DECLARE
    a ledger.account;
BEGIN
    SELECT * INTO a FROM ledger.account
    WHERE owner_kind = p_owner_kind AND owner_id = p_owner_id AND purpose = p_purpose;
    IF FOUND THEN
        RETURN a;
    END IF;
    INSERT INTO ledger.account (owner_kind, owner_id, purpose, asset, floor_rule, rollup)
    VALUES (
        p_owner_kind, p_owner_id, p_purpose,
        CASE WHEN p_purpose IN ('wallet', 'held', 'points_issued') THEN 'PTS'
             ELSE (SELECT currency::text FROM public.network_settings) END,
        CASE p_purpose WHEN 'wallet' THEN 'non_negative_except_clawback'
                       WHEN 'held' THEN 'non_negative' ELSE 'none' END,
        p_owner_kind <> 'shopper')
    ON CONFLICT (owner_kind, owner_id, purpose) DO NOTHING;
    SELECT * INTO STRICT a FROM ledger.account
    WHERE owner_kind = p_owner_kind AND owner_id = p_owner_id AND purpose = p_purpose;
    RETURN a;
END $$;

CREATE FUNCTION ledger._network(p_purpose text) RETURNS ledger.account
LANGUAGE sql AS $$ SELECT ledger._account('network', 0, p_purpose) $$;

-- Who pays for issued points: the partner's settlement account, or network marketing.
CREATE FUNCTION ledger._payer(p_partner bigint) RETURNS ledger.account
LANGUAGE sql AS $$
    SELECT CASE WHEN p_partner IS NULL THEN ledger._account('network', 0, 'marketing')
                ELSE ledger._account('partner', p_partner, 'settlement') END
$$;

-- The wallet row is the one lock of the request path, and the per-shopper mutex for lots,
-- holds and refunds.
CREATE FUNCTION ledger._lock_wallet(p_shopper bigint) RETURNS ledger.wallet
LANGUAGE plpgsql AS $$
DECLARE
    w ledger.wallet;
BEGIN
    SELECT * INTO w FROM ledger.wallet WHERE shopper_id = p_shopper FOR UPDATE;
    IF FOUND THEN
        RETURN w;
    END IF;
    IF p_shopper IS NULL OR p_shopper <= 0 THEN
        PERFORM ledger._fail('invalid_argument',
            jsonb_build_object('field', 'shopper_id', 'reason', 'must be positive'));
    END IF;
    INSERT INTO ledger.wallet (shopper_id, wallet_account_id, held_account_id)
    VALUES (p_shopper, (ledger._account('shopper', p_shopper, 'wallet')).account_id,
            (ledger._account('shopper', p_shopper, 'held')).account_id)
    ON CONFLICT (shopper_id) DO NOTHING;
    SELECT * INTO STRICT w FROM ledger.wallet WHERE shopper_id = p_shopper FOR UPDATE;
    RETURN w;
END $$;

-- The shopper who now holds a card's points: follows card merges (bounded).
CREATE FUNCTION ledger._current_shopper(p_shopper bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v bigint := p_shopper;
    v_next bigint;
BEGIN
    FOR i IN 1..64 LOOP
        SELECT merged_into_shopper_id INTO v_next FROM ledger.wallet WHERE shopper_id = v;
        IF v_next IS NULL THEN
            RETURN v;
        END IF;
        v := v_next;
    END LOOP;
    PERFORM ledger._fail('ledger_inconsistent',
        jsonb_build_object('reason', 'merge chain too long', 'shopper_id', p_shopper));
    RETURN NULL;
END $$;

CREATE FUNCTION ledger._lock_current_wallet(p_shopper bigint) RETURNS ledger.wallet
LANGUAGE plpgsql AS $$
DECLARE
    w ledger.wallet;
BEGIN
    w := ledger._lock_wallet(ledger._current_shopper(p_shopper));
    IF w.merged_into_shopper_id IS NOT NULL THEN
        -- A merge committed between the lookup and the lock: let the caller retry.
        RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'shopper merged concurrently';
    END IF;
    RETURN w;
END $$;

-- Claim an idempotency key. NULL: claimed, go ahead. Otherwise the stored result (a replay),
-- or idempotency_conflict naming the fields whose values differ.
CREATE FUNCTION ledger._claim(p_key text, p_operation text, p_args jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    r ledger.operation;
    v_fields jsonb;
BEGIN
    IF p_key IS NULL OR length(p_key) NOT BETWEEN 1 AND 200 THEN
        PERFORM ledger._fail('invalid_argument', jsonb_build_object(
            'field', 'idempotency_key', 'reason', 'must be 1 to 200 characters'));
    END IF;
    INSERT INTO ledger.operation (idempotency_key, operation, args)
    VALUES (p_key, p_operation, p_args)
    ON CONFLICT (idempotency_key) DO NOTHING;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    SELECT * INTO STRICT r FROM ledger.operation WHERE idempotency_key = p_key;
    SELECT coalesce(jsonb_agg(k ORDER BY k), '[]'::jsonb) INTO v_fields
    FROM (SELECT jsonb_object_keys(r.args) AS k UNION SELECT jsonb_object_keys(p_args)) keys
    WHERE (r.args -> k) IS DISTINCT FROM (p_args -> k);
    IF r.operation <> p_operation THEN
        v_fields := '["operation"]'::jsonb || v_fields;
    END IF;
    IF v_fields <> '[]'::jsonb THEN
        PERFORM ledger._fail('idempotency_conflict', jsonb_build_object(
            'idempotency_key', p_key, 'fields', v_fields));
    END IF;
    IF r.result IS NULL THEN
        PERFORM ledger._fail('ledger_inconsistent', jsonb_build_object(
            'reason', 'claimed key without result', 'idempotency_key', p_key));
    END IF;
    RETURN r.result || '{"replayed": true}'::jsonb;
END $$;

CREATE FUNCTION ledger._entry(p_kind text, p_key text, p_shopper bigint, p_partner bigint,
                              p_corrects bigint, p_args jsonb, p_metadata jsonb)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v bigint;
BEGIN
    INSERT INTO ledger.entry (kind, idempotency_key, shopper_id, partner_id, corrects_entry_id,
                              args, metadata)
    VALUES (p_kind, p_key, p_shopper, p_partner, p_corrects, p_args,
            coalesce(p_metadata, '{}'::jsonb))
    RETURNING entry_id INTO v;
    INSERT INTO ledger.seal_queue (entry_id) VALUES (v);
    RETURN v;
END $$;

CREATE FUNCTION ledger._post(p_entry bigint, p_account ledger.account, p_amount bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_amount = 0 THEN
        RETURN;
    END IF;
    INSERT INTO ledger.posting (entry_id, account_id, asset, amount)
    VALUES (p_entry, p_account.account_id, p_account.asset, p_amount);
    IF p_account.rollup THEN
        INSERT INTO ledger.balance_delta (account_id, entry_id, amount)
        VALUES (p_account.account_id, p_entry, p_amount);
    END IF;
END $$;

-- Postings to a shopper's wallet or held account (balance kept in ledger.wallet).
CREATE FUNCTION ledger._post_shopper(p_entry bigint, p_account_id bigint, p_amount bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_amount <> 0 THEN
        INSERT INTO ledger.posting (entry_id, account_id, asset, amount)
        VALUES (p_entry, p_account_id, 'PTS', p_amount);
    END IF;
END $$;

-- Take up to p_points free lot points, soonest expiry first (never-expiring lots last).
-- Mirrored by ledger/_rules.py:allocate (the unit-tested model of the order).
CREATE FUNCTION ledger._take_free(p_shopper bigint, p_points bigint, p_entry bigint,
                                  p_record boolean, OUT taken bigint, OUT value_micros bigint)
LANGUAGE plpgsql AS $$
DECLARE
    l record;
    v_take bigint;
BEGIN
    taken := 0;
    value_micros := 0;
    IF p_points <= 0 THEN
        RETURN;
    END IF;
    FOR l IN SELECT lot_id, remaining - reserved AS free, issue_price_micros
             FROM ledger.lot
             WHERE shopper_id = p_shopper AND remaining > reserved
             ORDER BY expires_at NULLS LAST, lot_id LOOP
        v_take := least(l.free, p_points - taken);
        UPDATE ledger.lot SET remaining = remaining - v_take
        WHERE shopper_id = p_shopper AND lot_id = l.lot_id;
        IF p_record THEN
            INSERT INTO ledger.consumption (shopper_id, entry_id, lot_id, points,
                                            issue_price_micros)
            VALUES (p_shopper, p_entry, l.lot_id, v_take, l.issue_price_micros);
        END IF;
        taken := taken + v_take;
        value_micros := value_micros + v_take * l.issue_price_micros;
        EXIT WHEN taken = p_points;
    END LOOP;
END $$;

-- Net a wallet's points debt against its free lot points (after points came back to it).
CREATE FUNCTION ledger._repay_debt(p_entry bigint, p_shopper bigint, p_debt_points bigint,
                                   p_debt_value bigint, OUT repaid bigint,
                                   OUT repaid_value bigint)
LANGUAGE plpgsql AS $$
DECLARE
    t record;
BEGIN
    repaid := 0;
    repaid_value := 0;
    IF p_debt_points = 0 THEN
        RETURN;
    END IF;
    SELECT * INTO t FROM ledger._take_free(p_shopper, p_debt_points, p_entry, false);
    repaid := t.taken;
    repaid_value := ledger._debt_share(p_debt_points, p_debt_value, t.taken);
    PERFORM ledger._post(p_entry, ledger._network('deferred_revenue'), t.value_micros);
    PERFORM ledger._post(p_entry, ledger._network('points_debt'), -repaid_value);
    PERFORM ledger._post(p_entry, ledger._network('redemption_margin'),
                         repaid_value - t.value_micros);
END $$;

-- The result of an operation: stored with the key for replays, returned to the caller.
CREATE FUNCTION ledger._finish(p_key text, p_entry bigint, p_kind text, p_shopper bigint,
                               p_extra jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    w ledger.wallet;
    v jsonb;
BEGIN
    IF p_shopper IS NOT NULL THEN
        SELECT * INTO w FROM ledger.wallet WHERE shopper_id = p_shopper;
    END IF;
    v := jsonb_build_object(
        'entry_id', p_entry,
        'kind', p_kind,
        'shopper_id', p_shopper,
        'balance_after', w.available,
        'held_after', w.held,
        'debt_points_after', w.debt_points,
        'postings', (
            SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'account', a.name, 'asset', p.asset, 'amount', p.amount)
                       ORDER BY p.posting_id), '[]'::jsonb)
            FROM ledger.posting p JOIN ledger.account a USING (account_id)
            WHERE p.entry_id = p_entry)
    ) || p_extra;
    IF p_key IS NOT NULL THEN
        UPDATE ledger.operation SET entry_id = p_entry, result = v
        WHERE idempotency_key = p_key;
    END IF;
    RETURN v || '{"replayed": false}'::jsonb;
END $$;

CREATE FUNCTION ledger._require(p_ok boolean, p_field text, p_reason text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_ok IS NOT TRUE THEN
        PERFORM ledger._fail('invalid_argument',
            jsonb_build_object('field', p_field, 'reason', p_reason));
    END IF;
END $$;

-- Operations -----------------------------------------------------------------------------------

-- earn at P (or goodwill by P / by the operator when p_partner IS NULL).
CREATE FUNCTION ledger.earn(p_key text, p_shopper bigint, p_partner bigint, p_points bigint,
                            p_issue_price bigint, p_expires_at timestamptz, p_kind text,
                            p_metadata jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_args jsonb;
    v_replay jsonb;
    w ledger.wallet;
    v_entry bigint;
    v_repay bigint;
    v_repay_value bigint;
    v_lot bigint;
    v_lot_points bigint;
BEGIN
    PERFORM ledger._require(p_points > 0, 'points', 'must be positive');
    PERFORM ledger._require(p_issue_price >= 0, 'issue_price_micros', 'must not be negative');
    PERFORM ledger._require(p_kind IN ('earn', 'goodwill'), 'kind', 'earn or goodwill');
    v_args := jsonb_build_object(
        'shopper_id', p_shopper, 'partner_id', p_partner, 'points', p_points,
        'issue_price_micros', p_issue_price, 'expires_at', ledger._ts(p_expires_at),
        'metadata', coalesce(p_metadata, '{}'::jsonb));
    v_replay := ledger._claim(p_key, p_kind, v_args);
    IF v_replay IS NOT NULL THEN
        RETURN v_replay;
    END IF;
    w := ledger._lock_wallet(p_shopper);
    IF w.merged_into_shopper_id IS NOT NULL THEN
        PERFORM ledger._fail('shopper_merged', jsonb_build_object(
            'shopper_id', p_shopper, 'merged_into', w.merged_into_shopper_id));
    END IF;
    v_entry := ledger._entry(p_kind, p_key, p_shopper, p_partner, NULL, v_args, p_metadata);
    PERFORM ledger._post_shopper(v_entry, w.wallet_account_id, p_points);
    PERFORM ledger._post(v_entry, ledger._network('points_issued'), -p_points);
    PERFORM ledger._post(v_entry, ledger._payer(p_partner), p_points * p_issue_price);
    -- While in debt, the first points repay it and create no lot.
    v_repay := least(p_points, w.debt_points);
    v_repay_value := ledger._debt_share(w.debt_points, w.debt_value_micros, v_repay);
    v_lot_points := p_points - v_repay;
    IF v_lot_points > 0 THEN
        v_lot := nextval('ledger.lot_id_seq');
        INSERT INTO ledger.lot (shopper_id, lot_id, root_lot_id, entry_id, partner_id,
                                issue_price_micros, origin, expires_at, points, remaining)
        VALUES (p_shopper, v_lot, v_lot, v_entry, p_partner, p_issue_price, p_kind,
                p_expires_at, v_lot_points, v_lot_points);
        PERFORM ledger._post(v_entry, ledger._network('deferred_revenue'),
                             -v_lot_points * p_issue_price);
    END IF;
    IF v_repay > 0 THEN
        PERFORM ledger._post(v_entry, ledger._network('points_debt'), -v_repay_value);
        PERFORM ledger._post(v_entry, ledger._network('redemption_margin'),
                             v_repay_value - v_repay * p_issue_price);
    END IF;
    UPDATE ledger.wallet
    SET available = available + p_points,
        debt_points = debt_points - v_repay,
        debt_value_micros = debt_value_micros - v_repay_value
    WHERE shopper_id = p_shopper;
    RETURN ledger._finish(p_key, v_entry, p_kind, p_shopper,
        jsonb_build_object('points', p_points, 'lot_id', v_lot));
END $$;

-- burn at R: consumes lots soonest-expiry first, money lines per consumed lot.
CREATE FUNCTION ledger.burn(p_key text, p_shopper bigint, p_partner bigint, p_points bigint,
                            p_redemption_price bigint, p_metadata jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_args jsonb;
    v_replay jsonb;
    w ledger.wallet;
    v_entry bigint;
    t record;
BEGIN
    PERFORM ledger._require(p_points > 0, 'points', 'must be positive');
    PERFORM ledger._require(p_redemption_price >= 0, 'redemption_price_micros',
                            'must not be negative');
    PERFORM ledger._require(p_partner IS NOT NULL, 'partner_id', 'required');
    v_args := jsonb_build_object(
        'shopper_id', p_shopper, 'partner_id', p_partner, 'points', p_points,
        'redemption_price_micros', p_redemption_price,
        'metadata', coalesce(p_metadata, '{}'::jsonb));
    v_replay := ledger._claim(p_key, 'burn', v_args);
    IF v_replay IS NOT NULL THEN
        RETURN v_replay;
    END IF;
    w := ledger._lock_wallet(p_shopper);
    IF w.available < p_points THEN
        PERFORM ledger._fail('insufficient_points', jsonb_build_object(
            'available', greatest(w.available, 0), 'requested', p_points));
    END IF;
    v_entry := ledger._entry('burn', p_key, p_shopper, p_partner, NULL, v_args, p_metadata);
    SELECT * INTO t FROM ledger._take_free(p_shopper, p_points, v_entry, true);
    IF t.taken <> p_points THEN
        PERFORM ledger._fail('ledger_inconsistent', jsonb_build_object(
            'reason', 'lots do not cover the wallet', 'shopper_id', p_shopper));
    END IF;
    PERFORM ledger._post_shopper(v_entry, w.wallet_account_id, -p_points);
    PERFORM ledger._post(v_entry, ledger._network('points_issued'), p_points);
    PERFORM ledger._post(v_entry, ledger._network('deferred_revenue'), t.value_micros);
    PERFORM ledger._post(v_entry, ledger._account('partner', p_partner, 'settlement'),
                         -p_points * p_redemption_price);
    PERFORM ledger._post(v_entry, ledger._network('redemption_margin'),
                         p_points * p_redemption_price - t.value_micros);
    UPDATE ledger.wallet SET available = available - p_points WHERE shopper_id = p_shopper;
    RETURN ledger._finish(p_key, v_entry, 'burn', p_shopper,
        jsonb_build_object('points', p_points));
END $$;

CREATE FUNCTION ledger.goodwill_debit(p_key text, p_shopper bigint, p_partner bigint,
                                      p_points bigint, p_reason text, p_metadata jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_args jsonb;
    v_replay jsonb;
    w ledger.wallet;
    v_entry bigint;
    t record;
BEGIN
    PERFORM ledger._require(p_points > 0, 'points', 'must be positive');
    PERFORM ledger._require(length(p_reason) > 0, 'reason', 'required');
    v_args := jsonb_build_object(
        'shopper_id', p_shopper, 'partner_id', p_partner, 'points', p_points,
        'reason', p_reason, 'metadata', coalesce(p_metadata, '{}'::jsonb));
    v_replay := ledger._claim(p_key, 'goodwill_debit', v_args);
    IF v_replay IS NOT NULL THEN
        RETURN v_replay;
    END IF;
    w := ledger._lock_wallet(p_shopper);
    IF w.available < p_points THEN
        PERFORM ledger._fail('insufficient_points', jsonb_build_object(
            'available', greatest(w.available, 0), 'requested', p_points));
    END IF;
    v_entry := ledger._entry('goodwill_debit', p_key, p_shopper, p_partner, NULL, v_args,
                             p_metadata);
    SELECT * INTO t FROM ledger._take_free(p_shopper, p_points, v_entry, false);
    IF t.taken <> p_points THEN
        PERFORM ledger._fail('ledger_inconsistent', jsonb_build_object(
            'reason', 'lots do not cover the wallet', 'shopper_id', p_shopper));
    END IF;
    -- The payer gets back the issue value of the points taken away.
    PERFORM ledger._post_shopper(v_entry, w.wallet_account_id, -p_points);
    PERFORM ledger._post(v_entry, ledger._network('points_issued'), p_points);
    PERFORM ledger._post(v_entry, ledger._network('deferred_revenue'), t.value_micros);
    PERFORM ledger._post(v_entry, ledger._payer(p_partner), -t.value_micros);
    UPDATE ledger.wallet SET available = available - p_points WHERE shopper_id = p_shopper;
    RETURN ledger._finish(p_key, v_entry, 'goodwill_debit', p_shopper,
        jsonb_build_object('points', p_points));
END $$;

CREATE FUNCTION ledger.hold(p_key text, p_shopper bigint, p_partner bigint, p_points bigint,
                            p_expires_at timestamptz, p_metadata jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_args jsonb;
    v_replay jsonb;
    w ledger.wallet;
    v_entry bigint;
    v_hold bigint;
    v_rest bigint := p_points;
    v_take bigint;
    l record;
BEGIN
    PERFORM ledger._require(p_points > 0, 'points', 'must be positive');
    PERFORM ledger._require(p_partner IS NOT NULL, 'partner_id', 'required');
    PERFORM ledger._require(p_expires_at IS NOT NULL, 'expires_at', 'required');
    v_args := jsonb_build_object(
        'shopper_id', p_shopper, 'partner_id', p_partner, 'points', p_points,
        'expires_at', ledger._ts(p_expires_at), 'metadata', coalesce(p_metadata, '{}'::jsonb));
    v_replay := ledger._claim(p_key, 'hold', v_args);
    IF v_replay IS NOT NULL THEN
        RETURN v_replay;
    END IF;
    w := ledger._lock_wallet(p_shopper);
    IF w.available < p_points THEN
        PERFORM ledger._fail('insufficient_points', jsonb_build_object(
            'available', greatest(w.available, 0), 'requested', p_points));
    END IF;
    v_entry := ledger._entry('hold', p_key, p_shopper, p_partner, NULL, v_args, p_metadata);
    v_hold := nextval('ledger.hold_id_seq');
    INSERT INTO ledger.hold (shopper_id, hold_id, partner_id, points, expires_at, entry_id)
    VALUES (p_shopper, v_hold, p_partner, p_points, p_expires_at, v_entry);
    -- Reserve the lot points the hold would consume, soonest expiry first.
    FOR l IN SELECT lot_id, remaining - reserved AS free FROM ledger.lot
             WHERE shopper_id = p_shopper AND remaining > reserved
             ORDER BY expires_at NULLS LAST, lot_id LOOP
        v_take := least(l.free, v_rest);
        UPDATE ledger.lot SET reserved = reserved + v_take
        WHERE shopper_id = p_shopper AND lot_id = l.lot_id;
        INSERT INTO ledger.hold_lot (shopper_id, hold_id, lot_id, points)
        VALUES (p_shopper, v_hold, l.lot_id, v_take);
        v_rest := v_rest - v_take;
        EXIT WHEN v_rest = 0;
    END LOOP;
    IF v_rest <> 0 THEN
        PERFORM ledger._fail('ledger_inconsistent', jsonb_build_object(
            'reason', 'lots do not cover the wallet', 'shopper_id', p_shopper));
    END IF;
    PERFORM ledger._post_shopper(v_entry, w.wallet_account_id, -p_points);
    PERFORM ledger._post_shopper(v_entry, w.held_account_id, p_points);
    UPDATE ledger.wallet SET available = available - p_points, held = held + p_points
    WHERE shopper_id = p_shopper;
    RETURN ledger._finish(p_key, v_entry, 'hold', p_shopper,
        jsonb_build_object('points', p_points, 'hold_id', v_hold));
END $$;

-- Lock the wallet, then the open hold. Raises hold_not_found / hold_not_open.
CREATE FUNCTION ledger._lock_open_hold(p_hold_id bigint) RETURNS ledger.hold
LANGUAGE plpgsql AS $$
DECLARE
    v_shopper bigint;
    h ledger.hold;
BEGIN
    SELECT shopper_id INTO v_shopper FROM ledger.hold WHERE hold_id = p_hold_id;
    IF NOT FOUND THEN
        PERFORM ledger._fail('hold_not_found', jsonb_build_object('hold_id', p_hold_id));
    END IF;
    PERFORM ledger._lock_wallet(v_shopper);
    SELECT * INTO STRICT h FROM ledger.hold
    WHERE shopper_id = v_shopper AND hold_id = p_hold_id FOR UPDATE;
    IF h.state <> 'open' THEN
        PERFORM ledger._fail('hold_not_open',
            jsonb_build_object('hold_id', p_hold_id, 'state', h.state));
    END IF;
    RETURN h;
END $$;

-- Return an open hold's points to the wallet (void, or expiry by the worker).
CREATE FUNCTION ledger._close_hold(p_entry bigint, h ledger.hold, p_state text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    w ledger.wallet;
    r record;
BEGIN
    SELECT * INTO STRICT w FROM ledger.wallet WHERE shopper_id = h.shopper_id;
    UPDATE ledger.lot l SET reserved = l.reserved - hl.points
    FROM ledger.hold_lot hl
    WHERE hl.shopper_id = h.shopper_id AND hl.hold_id = h.hold_id
      AND l.shopper_id = hl.shopper_id AND l.lot_id = hl.lot_id;
    UPDATE ledger.hold SET state = p_state, closed_entry_id = p_entry
    WHERE shopper_id = h.shopper_id AND hold_id = h.hold_id;
    PERFORM ledger._post_shopper(p_entry, w.held_account_id, -h.points);
    PERFORM ledger._post_shopper(p_entry, w.wallet_account_id, h.points);
    SELECT * INTO r FROM ledger._repay_debt(p_entry, h.shopper_id, w.debt_points,
                                            w.debt_value_micros);
    UPDATE ledger.wallet
    SET held = held - h.points, available = available + h.points,
        debt_points = debt_points - r.repaid,
        debt_value_micros = debt_value_micros - r.repaid_value
    WHERE shopper_id = h.shopper_id;
END $$;

CREATE FUNCTION ledger.capture(p_key text, p_hold_id bigint, p_points bigint,
                               p_redemption_price bigint, p_metadata jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_args jsonb;
    v_replay jsonb;
    h ledger.hold;
    w ledger.wallet;
    v_entry bigint;
    v_rest bigint := p_points;
    v_take bigint;
    v_value bigint := 0;
    l record;
    r record;
BEGIN
    PERFORM ledger._require(p_points > 0, 'points', 'must be positive');
    PERFORM ledger._require(p_redemption_price >= 0, 'redemption_price_micros',
                            'must not be negative');
    v_args := jsonb_build_object(
        'hold_id', p_hold_id, 'points', p_points, 'redemption_price_micros', p_redemption_price,
        'metadata', coalesce(p_metadata, '{}'::jsonb));
    v_replay := ledger._claim(p_key, 'capture', v_args);
    IF v_replay IS NOT NULL THEN
        RETURN v_replay;
    END IF;
    h := ledger._lock_open_hold(p_hold_id);
    IF p_points > h.points THEN
        PERFORM ledger._fail('capture_exceeds_hold', jsonb_build_object(
            'hold_id', p_hold_id, 'held', h.points, 'requested', p_points));
    END IF;
    SELECT * INTO STRICT w FROM ledger.wallet WHERE shopper_id = h.shopper_id;
    v_entry := ledger._entry('capture', p_key, h.shopper_id, h.partner_id, h.entry_id, v_args,
                             p_metadata);
    FOR l IN SELECT hl.lot_id, hl.points, lot.issue_price_micros
             FROM ledger.hold_lot hl
             JOIN ledger.lot lot ON lot.shopper_id = hl.shopper_id AND lot.lot_id = hl.lot_id
             WHERE hl.shopper_id = h.shopper_id AND hl.hold_id = h.hold_id
             ORDER BY lot.expires_at NULLS LAST, lot.lot_id LOOP
        v_take := least(v_rest, l.points);
        UPDATE ledger.lot SET reserved = reserved - l.points, remaining = remaining - v_take
        WHERE shopper_id = h.shopper_id AND lot_id = l.lot_id;
        IF v_take > 0 THEN
            INSERT INTO ledger.consumption (shopper_id, entry_id, lot_id, points,
                                            issue_price_micros)
            VALUES (h.shopper_id, v_entry, l.lot_id, v_take, l.issue_price_micros);
            v_value := v_value + v_take * l.issue_price_micros;
            v_rest := v_rest - v_take;
        END IF;
    END LOOP;
    IF v_rest <> 0 THEN
        PERFORM ledger._fail('ledger_inconsistent', jsonb_build_object(
            'reason', 'hold lots do not cover the hold', 'hold_id', p_hold_id));
    END IF;
    UPDATE ledger.hold SET state = 'captured', captured_points = p_points,
                           closed_entry_id = v_entry
    WHERE shopper_id = h.shopper_id AND hold_id = h.hold_id;
    PERFORM ledger._post_shopper(v_entry, w.held_account_id, -h.points);
    PERFORM ledger._post_shopper(v_entry, w.wallet_account_id, h.points - p_points);
    PERFORM ledger._post(v_entry, ledger._network('points_issued'), p_points);
    PERFORM ledger._post(v_entry, ledger._network('deferred_revenue'), v_value);
    PERFORM ledger._post(v_entry, ledger._account('partner', h.partner_id, 'settlement'),
                         -p_points * p_redemption_price);
    PERFORM ledger._post(v_entry, ledger._network('redemption_margin'),
                         p_points * p_redemption_price - v_value);
    SELECT * INTO r FROM ledger._repay_debt(v_entry, h.shopper_id, w.debt_points,
                                            w.debt_value_micros);
    UPDATE ledger.wallet
    SET held = held - h.points, available = available + (h.points - p_points),
        debt_points = debt_points - r.repaid,
        debt_value_micros = debt_value_micros - r.repaid_value
    WHERE shopper_id = h.shopper_id;
    RETURN ledger._finish(p_key, v_entry, 'capture', h.shopper_id,
        jsonb_build_object('points', p_points, 'hold_id', p_hold_id));
END $$;

CREATE FUNCTION ledger.void(p_key text, p_hold_id bigint, p_metadata jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_args jsonb;
    v_replay jsonb;
    h ledger.hold;
    v_entry bigint;
BEGIN
    v_args := jsonb_build_object('hold_id', p_hold_id,
                                 'metadata', coalesce(p_metadata, '{}'::jsonb));
    v_replay := ledger._claim(p_key, 'void', v_args);
    IF v_replay IS NOT NULL THEN
        RETURN v_replay;
    END IF;
    h := ledger._lock_open_hold(p_hold_id);
    v_entry := ledger._entry('void', p_key, h.shopper_id, h.partner_id, h.entry_id, v_args,
                             p_metadata);
    PERFORM ledger._close_hold(v_entry, h, 'voided');
    RETURN ledger._finish(p_key, v_entry, 'void', h.shopper_id,
        jsonb_build_object('points', h.points, 'hold_id', p_hold_id));
END $$;

-- Worker: release holds past their expiry. Wallets locked by a request are skipped (SKIP
-- LOCKED) and picked up by the next run, so the worker never waits behind a checkout.
CREATE FUNCTION ledger.release_expired_holds(p_now timestamptz, p_batch_max integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    c record;
    h ledger.hold;
    v_entry bigint;
    v_released integer := 0;
BEGIN
    FOR c IN SELECT shopper_id, hold_id FROM ledger.hold
             WHERE state = 'open' AND expires_at <= p_now
             ORDER BY expires_at, hold_id LIMIT p_batch_max LOOP
        PERFORM 1 FROM ledger.wallet WHERE shopper_id = c.shopper_id FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        SELECT * INTO STRICT h FROM ledger.hold
        WHERE shopper_id = c.shopper_id AND hold_id = c.hold_id FOR UPDATE;
        CONTINUE WHEN h.state <> 'open';
        v_entry := ledger._entry('hold_release', NULL, h.shopper_id, h.partner_id, h.entry_id,
            jsonb_build_object('hold_id', h.hold_id, 'now', ledger._ts(p_now)), NULL);
        PERFORM ledger._close_hold(v_entry, h, 'expired');
        v_released := v_released + 1;
    END LOOP;
    RETURN v_released;
END $$;

-- Worker: move unspent lot remainders past their expiry to breakage.
CREATE FUNCTION ledger.expire_lots(p_now timestamptz, p_batch_max integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    s record;
    l record;
    w ledger.wallet;
    v_entry bigint;
    v_points bigint;
    v_value bigint;
    v_lots jsonb;
    v_expired integer := 0;
BEGIN
    FOR s IN SELECT DISTINCT shopper_id FROM (
                 SELECT shopper_id FROM ledger.lot
                 WHERE expires_at <= p_now AND remaining > reserved
                 ORDER BY expires_at LIMIT p_batch_max) due LOOP
        SELECT * INTO w FROM ledger.wallet WHERE shopper_id = s.shopper_id
        FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        v_points := 0;
        v_value := 0;
        v_lots := '[]'::jsonb;
        FOR l IN SELECT lot_id, remaining - reserved AS free, issue_price_micros
                 FROM ledger.lot
                 WHERE shopper_id = s.shopper_id AND expires_at <= p_now
                   AND remaining > reserved
                 ORDER BY expires_at, lot_id LOOP
            UPDATE ledger.lot SET remaining = reserved
            WHERE shopper_id = s.shopper_id AND lot_id = l.lot_id;
            v_points := v_points + l.free;
            v_value := v_value + l.free * l.issue_price_micros;
            v_lots := v_lots || jsonb_build_object('lot_id', l.lot_id, 'points', l.free);
            v_expired := v_expired + 1;
        END LOOP;
        CONTINUE WHEN v_points = 0;
        v_entry := ledger._entry('expiry', NULL, s.shopper_id, NULL, NULL,
            jsonb_build_object('now', ledger._ts(p_now), 'lots', v_lots), NULL);
        PERFORM ledger._post_shopper(v_entry, w.wallet_account_id, -v_points);
        PERFORM ledger._post(v_entry, ledger._network('points_issued'), v_points);
        PERFORM ledger._post(v_entry, ledger._network('deferred_revenue'), v_value);
        PERFORM ledger._post(v_entry, ledger._network('breakage'), -v_value);
        UPDATE ledger.wallet SET available = available - v_points
        WHERE shopper_id = s.shopper_id;
    END LOOP;
    RETURN v_expired;
END $$;

CREATE FUNCTION ledger.refund_earn(p_key text, p_original bigint, p_points bigint,
                                   p_metadata jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_args jsonb;
    v_replay jsonb;
    o ledger.entry;
    w ledger.wallet;
    v_entry bigint;
    v_root bigint;
    v_price bigint;
    v_refunded bigint;
    v_unspent bigint := 0;
    v_take bigint;
    v_debt bigint;
    l record;
    t record;
BEGIN
    PERFORM ledger._require(p_points > 0, 'points', 'must be positive');
    v_args := jsonb_build_object('original_entry_id', p_original, 'points', p_points,
                                 'metadata', coalesce(p_metadata, '{}'::jsonb));
    v_replay := ledger._claim(p_key, 'refund_earn', v_args);
    IF v_replay IS NOT NULL THEN
        RETURN v_replay;
    END IF;
    SELECT * INTO o FROM ledger.entry WHERE entry_id = p_original;
    IF NOT FOUND THEN
        PERFORM ledger._fail('entry_not_found', jsonb_build_object('entry_id', p_original));
    END IF;
    IF o.kind NOT IN ('earn', 'goodwill') THEN
        PERFORM ledger._fail('entry_not_refundable',
            jsonb_build_object('entry_id', p_original, 'kind', o.kind));
    END IF;
    w := ledger._lock_current_wallet(o.shopper_id);
    SELECT coalesce(sum((args ->> 'points')::bigint), 0) INTO v_refunded
    FROM ledger.entry WHERE corrects_entry_id = p_original AND kind = 'refund_earn';
    IF v_refunded + p_points > (o.args ->> 'points')::bigint THEN
        PERFORM ledger._fail('refund_exceeds_original', jsonb_build_object(
            'original_entry_id', p_original, 'original_points', (o.args ->> 'points')::bigint,
            'refunded_points', v_refunded, 'requested', p_points));
    END IF;
    v_price := (o.args ->> 'issue_price_micros')::bigint;
    v_entry := ledger._entry('refund_earn', p_key, w.shopper_id, o.partner_id, p_original,
                             v_args, p_metadata);
    -- Unspent share: from the earn's own lot (or the lots it became through merges/grace).
    SELECT lot_id INTO v_root FROM ledger.lot
    WHERE shopper_id = o.shopper_id AND entry_id = p_original;
    IF v_root IS NOT NULL THEN
        FOR l IN SELECT lot_id, remaining - reserved AS free FROM ledger.lot
                 WHERE shopper_id = w.shopper_id AND root_lot_id = v_root
                   AND remaining > reserved
                 ORDER BY lot_id LOOP
            v_take := least(l.free, p_points - v_unspent);
            UPDATE ledger.lot SET remaining = remaining - v_take
            WHERE shopper_id = w.shopper_id AND lot_id = l.lot_id;
            v_unspent := v_unspent + v_take;
            EXIT WHEN v_unspent = p_points;
        END LOOP;
    END IF;
    -- Spent share: netted against the shopper's other free points first, the rest is debt.
    SELECT * INTO t FROM ledger._take_free(w.shopper_id, p_points - v_unspent, v_entry, false);
    v_debt := p_points - v_unspent - t.taken;
    PERFORM ledger._post_shopper(v_entry, w.wallet_account_id, -p_points);
    PERFORM ledger._post(v_entry, ledger._network('points_issued'), p_points);
    PERFORM ledger._post(v_entry, ledger._payer(o.partner_id), -p_points * v_price);
    PERFORM ledger._post(v_entry, ledger._network('deferred_revenue'),
                         v_unspent * v_price + t.value_micros);
    PERFORM ledger._post(v_entry, ledger._network('redemption_margin'),
                         t.taken * v_price - t.value_micros);
    PERFORM ledger._post(v_entry, ledger._network('points_debt'), v_debt * v_price);
    UPDATE ledger.wallet
    SET available = available - p_points,
        debt_points = debt_points + v_debt,
        debt_value_micros = debt_value_micros + v_debt * v_price
    WHERE shopper_id = w.shopper_id;
    RETURN ledger._finish(p_key, v_entry, 'refund_earn', w.shopper_id,
        jsonb_build_object('points', p_points, 'clawback_points', v_debt));
END $$;

CREATE FUNCTION ledger.refund_burn(p_key text, p_original bigint, p_points bigint,
                                   p_grace_s integer, p_metadata jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_args jsonb;
    v_replay jsonb;
    o ledger.entry;
    w ledger.wallet;
    v_entry bigint;
    v_price bigint;
    v_refunded bigint;
    v_rest bigint := p_points;
    v_take bigint;
    v_value bigint := 0;
    v_partner bigint;
    c record;
    r record;
BEGIN
    PERFORM ledger._require(p_points > 0, 'points', 'must be positive');
    PERFORM ledger._require(p_grace_s > 0, 'grace_s', 'must be positive');
    v_args := jsonb_build_object('original_entry_id', p_original, 'points', p_points,
                                 'grace_s', p_grace_s,
                                 'metadata', coalesce(p_metadata, '{}'::jsonb));
    v_replay := ledger._claim(p_key, 'refund_burn', v_args);
    IF v_replay IS NOT NULL THEN
        RETURN v_replay;
    END IF;
    SELECT * INTO o FROM ledger.entry WHERE entry_id = p_original;
    IF NOT FOUND THEN
        PERFORM ledger._fail('entry_not_found', jsonb_build_object('entry_id', p_original));
    END IF;
    IF o.kind NOT IN ('burn', 'capture') THEN
        PERFORM ledger._fail('entry_not_refundable',
            jsonb_build_object('entry_id', p_original, 'kind', o.kind));
    END IF;
    w := ledger._lock_current_wallet(o.shopper_id);
    SELECT coalesce(sum((args ->> 'points')::bigint), 0) INTO v_refunded
    FROM ledger.entry WHERE corrects_entry_id = p_original AND kind = 'refund_burn';
    IF v_refunded + p_points > (o.args ->> 'points')::bigint THEN
        PERFORM ledger._fail('refund_exceeds_original', jsonb_build_object(
            'original_entry_id', p_original, 'original_points', (o.args ->> 'points')::bigint,
            'refunded_points', v_refunded, 'requested', p_points));
    END IF;
    v_price := (o.args ->> 'redemption_price_micros')::bigint;
    v_partner := o.partner_id;
    v_entry := ledger._entry('refund_burn', p_key, w.shopper_id, v_partner, p_original, v_args,
                             p_metadata);
    -- Points go back to the lots they came from, latest expiry first (the reverse of the
    -- burn); a lot that has expired since gets a short grace lot instead.
    FOR c IN SELECT cn.lot_id, cn.points - cn.refunded AS open, cn.issue_price_micros,
                    lot.expires_at, lot.partner_id, lot.root_lot_id, lot.earned_at
             FROM ledger.consumption cn
             JOIN ledger.lot lot ON lot.shopper_id = cn.shopper_id AND lot.lot_id = cn.lot_id
             WHERE cn.shopper_id = o.shopper_id AND cn.entry_id = p_original
               AND cn.points > cn.refunded
             ORDER BY lot.expires_at DESC NULLS FIRST, lot.lot_id DESC LOOP
        v_take := least(c.open, v_rest);
        UPDATE ledger.consumption SET refunded = refunded + v_take
        WHERE shopper_id = o.shopper_id AND entry_id = p_original AND lot_id = c.lot_id;
        IF w.shopper_id = o.shopper_id AND (c.expires_at IS NULL OR c.expires_at > now()) THEN
            UPDATE ledger.lot SET remaining = remaining + v_take
            WHERE shopper_id = o.shopper_id AND lot_id = c.lot_id;
        ELSE
            INSERT INTO ledger.lot (shopper_id, root_lot_id, entry_id, partner_id,
                                    issue_price_micros, origin, earned_at, expires_at, points,
                                    remaining)
            VALUES (w.shopper_id, c.root_lot_id, v_entry, c.partner_id, c.issue_price_micros,
                    CASE WHEN c.expires_at IS NULL OR c.expires_at > now() THEN 'transfer'
                         ELSE 'grace' END,
                    c.earned_at,
                    CASE WHEN c.expires_at IS NULL OR c.expires_at > now() THEN c.expires_at
                         ELSE now() + make_interval(secs => p_grace_s) END,
                    v_take, v_take);
        END IF;
        v_value := v_value + v_take * c.issue_price_micros;
        v_rest := v_rest - v_take;
        EXIT WHEN v_rest = 0;
    END LOOP;
    IF v_rest <> 0 THEN
        PERFORM ledger._fail('ledger_inconsistent', jsonb_build_object(
            'reason', 'consumption does not cover the refund', 'entry_id', p_original));
    END IF;
    PERFORM ledger._post_shopper(v_entry, w.wallet_account_id, p_points);
    PERFORM ledger._post(v_entry, ledger._network('points_issued'), -p_points);
    PERFORM ledger._post(v_entry, ledger._network('deferred_revenue'), -v_value);
    PERFORM ledger._post(v_entry, ledger._account('partner', v_partner, 'settlement'),
                         p_points * v_price);
    PERFORM ledger._post(v_entry, ledger._network('redemption_margin'),
                         v_value - p_points * v_price);
    SELECT * INTO r FROM ledger._repay_debt(v_entry, w.shopper_id, w.debt_points,
                                            w.debt_value_micros);
    UPDATE ledger.wallet
    SET available = available + p_points,
        debt_points = debt_points - r.repaid,
        debt_value_micros = debt_value_micros - r.repaid_value
    WHERE shopper_id = w.shopper_id;
    RETURN ledger._finish(p_key, v_entry, 'refund_burn', w.shopper_id,
        jsonb_build_object('points', p_points));
END $$;

-- Card merge: every free lot moves to the target with its expiry; a debt moves too.
CREATE FUNCTION ledger.transfer_all(p_key text, p_from bigint, p_to bigint, p_metadata jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_args jsonb;
    v_replay jsonb;
    wf ledger.wallet;
    wt ledger.wallet;
    v_entry bigint;
    v_points bigint := 0;
    v_lots integer := 0;
    l record;
    r record;
BEGIN
    PERFORM ledger._require(p_from <> p_to, 'to_shopper_id', 'must differ from from_shopper_id');
    v_args := jsonb_build_object('from_shopper_id', p_from, 'to_shopper_id', p_to,
                                 'metadata', coalesce(p_metadata, '{}'::jsonb));
    v_replay := ledger._claim(p_key, 'transfer', v_args);
    IF v_replay IS NOT NULL THEN
        RETURN v_replay;
    END IF;
    -- Fixed lock order: the lower shopper_id first, so two crossed merges cannot deadlock.
    IF p_from < p_to THEN
        wf := ledger._lock_wallet(p_from);
        wt := ledger._lock_wallet(p_to);
    ELSE
        wt := ledger._lock_wallet(p_to);
        wf := ledger._lock_wallet(p_from);
    END IF;
    IF wf.merged_into_shopper_id IS NOT NULL OR wt.merged_into_shopper_id IS NOT NULL THEN
        PERFORM ledger._fail('shopper_merged', jsonb_build_object(
            'shopper_id', CASE WHEN wf.merged_into_shopper_id IS NOT NULL THEN p_from
                               ELSE p_to END,
            'merged_into', coalesce(wf.merged_into_shopper_id, wt.merged_into_shopper_id)));
    END IF;
    IF wf.held > 0 THEN
        PERFORM ledger._fail('holds_open',
            jsonb_build_object('shopper_id', p_from, 'held', wf.held));
    END IF;
    v_entry := ledger._entry('transfer', p_key, p_from, NULL, NULL, v_args, p_metadata);
    FOR l IN SELECT * FROM ledger.lot
             WHERE shopper_id = p_from AND remaining > reserved
             ORDER BY expires_at NULLS LAST, lot_id LOOP
        UPDATE ledger.lot SET remaining = reserved
        WHERE shopper_id = p_from AND lot_id = l.lot_id;
        INSERT INTO ledger.lot (shopper_id, root_lot_id, entry_id, partner_id,
                                issue_price_micros, origin, earned_at, expires_at, points,
                                remaining)
        VALUES (p_to, l.root_lot_id, v_entry, l.partner_id, l.issue_price_micros, 'transfer',
                l.earned_at, l.expires_at, l.remaining - l.reserved, l.remaining - l.reserved);
        v_points := v_points + (l.remaining - l.reserved);
        v_lots := v_lots + 1;
    END LOOP;
    IF v_points - wf.debt_points <> wf.available THEN
        PERFORM ledger._fail('ledger_inconsistent', jsonb_build_object(
            'reason', 'lots do not cover the wallet', 'shopper_id', p_from));
    END IF;
    -- Net PTS movement: the source's whole balance (negative when it carries a debt).
    PERFORM ledger._post_shopper(v_entry, wf.wallet_account_id, -wf.available);
    PERFORM ledger._post_shopper(v_entry, wt.wallet_account_id, wf.available);
    UPDATE ledger.wallet
    SET available = 0, debt_points = 0, debt_value_micros = 0, merged_into_shopper_id = p_to
    WHERE shopper_id = p_from;
    SELECT * INTO r FROM ledger._repay_debt(v_entry, p_to, wt.debt_points + wf.debt_points,
                                            wt.debt_value_micros + wf.debt_value_micros);
    UPDATE ledger.wallet
    SET available = available + wf.available,
        debt_points = debt_points + wf.debt_points - r.repaid,
        debt_value_micros = debt_value_micros + wf.debt_value_micros - r.repaid_value
    WHERE shopper_id = p_to;
    RETURN ledger._finish(p_key, v_entry, 'transfer', p_to,
        jsonb_build_object('points', wf.available, 'lots_moved', v_lots));
END $$;

-- Statement paid: positive when the partner pays the network, negative for the reverse.
CREATE FUNCTION ledger.settlement_payment(p_key text, p_partner bigint, p_amount bigint,
                                          p_metadata jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_args jsonb;
    v_replay jsonb;
    v_entry bigint;
BEGIN
    PERFORM ledger._require(p_amount <> 0, 'amount_micros', 'must not be zero');
    PERFORM ledger._require(p_partner IS NOT NULL, 'partner_id', 'required');
    v_args := jsonb_build_object('partner_id', p_partner, 'amount_micros', p_amount,
                                 'metadata', coalesce(p_metadata, '{}'::jsonb));
    v_replay := ledger._claim(p_key, 'settlement_payment', v_args);
    IF v_replay IS NOT NULL THEN
        RETURN v_replay;
    END IF;
    v_entry := ledger._entry('settlement_payment', p_key, NULL, p_partner, NULL, v_args,
                             p_metadata);
    PERFORM ledger._post(v_entry, ledger._account('partner', p_partner, 'settlement'), -p_amount);
    PERFORM ledger._post(v_entry, ledger._network('bank'), p_amount);
    RETURN ledger._finish(p_key, v_entry, 'settlement_payment', NULL,
        jsonb_build_object('amount_micros', p_amount));
END $$;

-- Rollups and reads -----------------------------------------------------------------------------

-- Worker: fold a batch of deltas into balance rows. Concurrent folders take disjoint rows
-- (SKIP LOCKED) and update balance rows in account order, so they cannot deadlock.
CREATE FUNCTION ledger.fold_deltas(p_batch_max integer) RETURNS integer
LANGUAGE sql AS $$
    WITH taken AS (
        DELETE FROM ledger.balance_delta
        WHERE delta_id IN (SELECT delta_id FROM ledger.balance_delta
                           ORDER BY delta_id LIMIT p_batch_max FOR UPDATE SKIP LOCKED)
        RETURNING account_id, amount
    ), sums AS (
        SELECT account_id, sum(amount)::bigint AS amount, count(*) AS n
        FROM taken GROUP BY account_id
    ), folded AS (
        INSERT INTO ledger.account_balance AS b (account_id, balance)
        SELECT account_id, amount FROM sums ORDER BY account_id
        ON CONFLICT (account_id) DO UPDATE
        SET balance = b.balance + EXCLUDED.balance, folded_at = now()
        RETURNING 1
    )
    SELECT coalesce(sum(n), 0)::integer FROM sums
$$;

-- Exact balance: the wallet row for shopper accounts; folded + unfolded for the others; the
-- sum of postings up to p_at for a point in time. Unknown accounts have balance 0.
CREATE FUNCTION ledger.balance(p_name text, p_at timestamptz) RETURNS bigint
LANGUAGE plpgsql STABLE AS $$
DECLARE
    a ledger.account;
    v bigint;
BEGIN
    SELECT * INTO a FROM ledger.account WHERE name = p_name;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    IF p_at IS NOT NULL THEN
        SELECT coalesce(sum(amount), 0) INTO v FROM ledger.posting
        WHERE account_id = a.account_id AND created_at <= p_at;
    ELSIF a.owner_kind = 'shopper' THEN
        SELECT CASE a.purpose WHEN 'wallet' THEN available ELSE held END INTO v
        FROM ledger.wallet WHERE shopper_id = a.owner_id;
    ELSE
        SELECT coalesce((SELECT balance FROM ledger.account_balance
                         WHERE account_id = a.account_id), 0)
             + coalesce((SELECT sum(amount) FROM ledger.balance_delta
                         WHERE account_id = a.account_id), 0)
        INTO v;
    END IF;
    RETURN coalesce(v, 0);
END $$;
