-- ledger.earn with fewer statements (every purchase calls it; partner_purchase_write, 0085).
-- Same arguments, result, errors, locks and rows as 0002's version: a profile of the old one
-- (tests/load/earn_cpu.py) spent most of its time in per-statement and per-call overhead
-- (executor start-up, CHECK expressions re-read for every INSERT/UPDATE, plan-cache look-ups,
-- PL/pgSQL call frames), not in the rows themselves. What changed:
--   * the argument checks and the idempotency claim are inline; a key already taken goes to
--     ledger._claim, which re-runs the (conflicting) INSERT and answers replay or conflict;
--   * the wallet is locked with the same SELECT ... FOR UPDATE; the rare first use of a shopper
--     (no wallet row, or an invalid shopper id) still goes through ledger._lock_wallet;
--   * the accounts are read in one statement; an account not created yet is created by
--     ledger._account / _network / _payer in the same order as before, so account ids match;
--   * the postings (in the same order: wallet, points_issued, payer, deferred_revenue, then
--     points_debt and redemption_margin while in debt) are one multi-row INSERT, their
--     balance_delta rows another, zero amounts skipped as ledger._post did (the usual earn has
--     four non-zero postings; debt repayment and a zero issue price take a general statement
--     that lists and filters the same rows); every trigger (posting_in_entry_tx per row,
--     entry_balanced at commit, the FK checks) fires exactly as before;
--   * the wallet UPDATE returns the balances the result reports, and the result's postings are
--     built from the rows just written (ledger._finish re-read them); the result is stored on
--     the operation row with the same UPDATE.
-- The other operations keep using the 0002 helpers, unchanged.
CREATE OR REPLACE FUNCTION ledger.earn(p_key text, p_shopper bigint, p_partner bigint,
                                       p_points bigint, p_issue_price bigint,
                                       p_expires_at timestamptz, p_kind text, p_metadata jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_args jsonb;
    w ledger.wallet;
    v_entry bigint;
    v_repay bigint;
    v_repay_value bigint;
    v_lot bigint;
    v_lot_points bigint;
    v_wallet_name text;
    v_accounts ledger.account[];
    a_issued ledger.account;
    a_payer ledger.account;
    a_deferred ledger.account;
    a_debt ledger.account;
    a_margin ledger.account;
    v_available bigint;
    v_held bigint;
    v_debt_points bigint;
    v_postings jsonb;
    v jsonb;
BEGIN
    IF (p_points > 0) IS NOT TRUE THEN
        PERFORM ledger._fail('invalid_argument',
            jsonb_build_object('field', 'points', 'reason', 'must be positive'));
    END IF;
    IF (p_issue_price >= 0) IS NOT TRUE THEN
        PERFORM ledger._fail('invalid_argument',
            jsonb_build_object('field', 'issue_price_micros', 'reason', 'must not be negative'));
    END IF;
    IF (p_kind IN ('earn', 'goodwill')) IS NOT TRUE THEN
        PERFORM ledger._fail('invalid_argument',
            jsonb_build_object('field', 'kind', 'reason', 'earn or goodwill'));
    END IF;
    v_args := jsonb_build_object(
        'shopper_id', p_shopper, 'partner_id', p_partner, 'points', p_points,
        'issue_price_micros', p_issue_price, 'expires_at', ledger._ts(p_expires_at),
        'metadata', coalesce(p_metadata, '{}'::jsonb));
    -- ledger._claim, inline for the first use of a key.
    IF p_key IS NULL OR length(p_key) NOT BETWEEN 1 AND 200 THEN
        PERFORM ledger._fail('invalid_argument', jsonb_build_object(
            'field', 'idempotency_key', 'reason', 'must be 1 to 200 characters'));
    END IF;
    INSERT INTO ledger.operation (idempotency_key, operation, args)
    VALUES (p_key, p_kind, v_args)
    ON CONFLICT (idempotency_key) DO NOTHING;
    IF NOT FOUND THEN
        -- Taken (and committed, or by this transaction): a replay or a conflict.
        RETURN ledger._claim(p_key, p_kind, v_args);
    END IF;

    -- ledger._lock_wallet: its SELECT inline, the wallet's creation left to it.
    SELECT * INTO w FROM ledger.wallet WHERE shopper_id = p_shopper FOR UPDATE;
    IF NOT FOUND THEN
        w := ledger._lock_wallet(p_shopper);
    END IF;
    IF w.merged_into_shopper_id IS NOT NULL THEN
        PERFORM ledger._fail('shopper_merged', jsonb_build_object(
            'shopper_id', p_shopper, 'merged_into', w.merged_into_shopper_id));
    END IF;

    -- Accounts are never updated or deleted (account_no_delete), so reading them together is
    -- reading them one by one; a missing one is created below in 0002's order.
    SELECT (SELECT a.name FROM ledger.account a WHERE a.account_id = w.wallet_account_id),
           ARRAY[
               (SELECT a FROM ledger.account a
                WHERE a.owner_kind = 'network' AND a.owner_id = 0
                  AND a.purpose = 'points_issued'),
               (SELECT a FROM ledger.account a
                WHERE a.owner_kind = CASE WHEN p_partner IS NULL THEN 'network'
                                          ELSE 'partner' END
                  AND a.owner_id = coalesce(p_partner, 0)
                  AND a.purpose = CASE WHEN p_partner IS NULL THEN 'marketing'
                                       ELSE 'settlement' END),
               (SELECT a FROM ledger.account a
                WHERE a.owner_kind = 'network' AND a.owner_id = 0
                  AND a.purpose = 'deferred_revenue')]
    INTO v_wallet_name, v_accounts;
    a_issued := v_accounts[1];
    a_payer := v_accounts[2];
    a_deferred := v_accounts[3];

    v_repay := least(p_points, w.debt_points);
    v_repay_value := ledger._debt_share(w.debt_points, w.debt_value_micros, v_repay);
    v_lot_points := p_points - v_repay;

    INSERT INTO ledger.entry (kind, idempotency_key, shopper_id, partner_id, corrects_entry_id,
                              args, metadata)
    VALUES (p_kind, p_key, p_shopper, p_partner, NULL, v_args,
            coalesce(p_metadata, '{}'::jsonb))
    RETURNING entry_id INTO v_entry;
    INSERT INTO ledger.seal_queue (entry_id) VALUES (v_entry);
    IF p_issue_price > 0 AND p_points > 9223372036854775807 / p_issue_price THEN
        -- The payer's amount overflows bigint: 0002's steps up to that error, so that it is
        -- raised after the same rows (and sequence values: posting, balance_delta, no lot).
        PERFORM ledger._post_shopper(v_entry, w.wallet_account_id, p_points);
        PERFORM ledger._post(v_entry, ledger._network('points_issued'), -p_points);
        PERFORM ledger._post(v_entry, ledger._payer(p_partner), p_points * p_issue_price);
    END IF;

    IF a_issued.account_id IS NULL THEN
        a_issued := ledger._network('points_issued');
    END IF;
    IF a_payer.account_id IS NULL THEN
        a_payer := ledger._payer(p_partner);
    END IF;
    IF v_lot_points > 0 THEN
        v_lot := nextval('ledger.lot_id_seq');
        INSERT INTO ledger.lot (shopper_id, lot_id, root_lot_id, entry_id, partner_id,
                                issue_price_micros, origin, expires_at, points, remaining)
        VALUES (p_shopper, v_lot, v_lot, v_entry, p_partner, p_issue_price, p_kind,
                p_expires_at, v_lot_points, v_lot_points);
        IF a_deferred.account_id IS NULL THEN
            a_deferred := ledger._network('deferred_revenue');
        END IF;
    END IF;
    IF v_repay > 0 THEN
        a_debt := ledger._network('points_debt');
        a_margin := ledger._network('redemption_margin');
    END IF;

    -- The postings in 0002's order (ledger._post_shopper, then ledger._post for each account),
    -- zero amounts skipped; each posting to a rollup account also queued as a balance delta.
    IF v_repay = 0 AND p_issue_price > 0
       AND a_issued.rollup AND a_payer.rollup AND a_deferred.rollup THEN
        -- The usual earn: four non-zero postings, three of them to rollup accounts.
        INSERT INTO ledger.posting (entry_id, account_id, asset, amount)
        VALUES (v_entry, w.wallet_account_id, 'PTS', p_points),
               (v_entry, a_issued.account_id, a_issued.asset, -p_points),
               (v_entry, a_payer.account_id, a_payer.asset, p_points * p_issue_price),
               (v_entry, a_deferred.account_id, a_deferred.asset,
                -v_lot_points * p_issue_price);
        INSERT INTO ledger.balance_delta (account_id, entry_id, amount)
        VALUES (a_issued.account_id, v_entry, -p_points),
               (a_payer.account_id, v_entry, p_points * p_issue_price),
               (a_deferred.account_id, v_entry, -v_lot_points * p_issue_price);
        v_postings := jsonb_build_array(
            jsonb_build_object('account', v_wallet_name, 'asset', 'PTS', 'amount', p_points),
            jsonb_build_object('account', a_issued.name, 'asset', a_issued.asset,
                               'amount', -p_points),
            jsonb_build_object('account', a_payer.name, 'asset', a_payer.asset,
                               'amount', p_points * p_issue_price),
            jsonb_build_object('account', a_deferred.name, 'asset', a_deferred.asset,
                               'amount', -v_lot_points * p_issue_price));
    ELSE
        -- Repaying debt, or a zero issue price: the same rows, listed and filtered.
        WITH p (ord, account_id, name, asset, amount, rollup) AS MATERIALIZED (
            SELECT * FROM (VALUES
                (1, w.wallet_account_id, v_wallet_name, 'PTS', p_points, false),
                (2, a_issued.account_id, a_issued.name, a_issued.asset, -p_points,
                 a_issued.rollup),
                (3, a_payer.account_id, a_payer.name, a_payer.asset, p_points * p_issue_price,
                 a_payer.rollup),
                (4, a_deferred.account_id, a_deferred.name, a_deferred.asset,
                 CASE WHEN v_lot_points > 0 THEN -v_lot_points * p_issue_price ELSE 0 END,
                 a_deferred.rollup),
                (5, a_debt.account_id, a_debt.name, a_debt.asset,
                 CASE WHEN v_repay > 0 THEN -v_repay_value ELSE 0 END, a_debt.rollup),
                (6, a_margin.account_id, a_margin.name, a_margin.asset,
                 CASE WHEN v_repay > 0 THEN v_repay_value - v_repay * p_issue_price ELSE 0 END,
                 a_margin.rollup)
            ) AS v (ord, account_id, name, asset, amount, rollup)
            WHERE amount <> 0
        ),
        posted AS (
            INSERT INTO ledger.posting (entry_id, account_id, asset, amount)
            SELECT v_entry, p.account_id, p.asset, p.amount FROM p ORDER BY p.ord
        ),
        queued AS (
            INSERT INTO ledger.balance_delta (account_id, entry_id, amount)
            SELECT p.account_id, v_entry, p.amount FROM p WHERE p.rollup ORDER BY p.ord
        )
        SELECT jsonb_agg(jsonb_build_object('account', p.name, 'asset', p.asset,
                                            'amount', p.amount) ORDER BY p.ord)
        INTO v_postings FROM p;
    END IF;

    UPDATE ledger.wallet
    SET available = available + p_points,
        debt_points = debt_points - v_repay,
        debt_value_micros = debt_value_micros - v_repay_value
    WHERE shopper_id = p_shopper
    RETURNING available, held, debt_points INTO v_available, v_held, v_debt_points;

    -- ledger._finish
    v := jsonb_build_object(
        'entry_id', v_entry,
        'kind', p_kind,
        'shopper_id', p_shopper,
        'balance_after', v_available,
        'held_after', v_held,
        'debt_points_after', v_debt_points,
        'postings', coalesce(v_postings, '[]'::jsonb)
    ) || jsonb_build_object('points', p_points, 'lot_id', v_lot);
    UPDATE ledger.operation SET entry_id = v_entry, result = v
    WHERE idempotency_key = p_key;
    RETURN v || '{"replayed": false}'::jsonb;
END $$;
