-- ledger.burn with fewer statements (every redemption calls it), as 0087 did for ledger.earn.
-- Same arguments, result, errors, locks, rows and sequence values as 0002's version. What
-- changed:
--   * the argument checks and the idempotency claim are inline; a key already taken goes to
--     ledger._claim, which re-runs the (conflicting) INSERT and answers replay or conflict;
--   * the wallet is locked with the same SELECT ... FOR UPDATE; the rare first use of a shopper
--     (no wallet row, or an invalid shopper id) still goes through ledger._lock_wallet;
--   * the lots are consumed in one statement instead of ledger._take_free's loop: the free lots
--     in the same order (expires_at NULLS LAST, lot_id), each taking least(free, what is still
--     needed) while something is needed, the same UPDATE of `remaining` and the same
--     `consumption` rows; the points taken and their issue value come back from it;
--   * the accounts (wallet name, points_issued, deferred_revenue, the partner's settlement,
--     redemption_margin) are read in one statement; a missing one is created by
--     ledger._network / _account in 0002's order (0002 created all four, zero amounts or not);
--   * the postings (in 0002's order: wallet, points_issued, deferred_revenue, settlement,
--     redemption_margin) are one multi-row INSERT, their balance_delta rows another, zero
--     amounts skipped as ledger._post did (the usual burn has five non-zero postings; a zero
--     amount takes a general statement that lists and filters the same rows); every trigger
--     (posting_in_entry_tx per row, entry_balanced at commit, the FK checks) fires as before;
--   * an amount that overflows bigint (points x redemption price) runs 0002's own statements
--     from the postings on, so that the error comes after the same rows and sequence values;
--   * the wallet UPDATE returns the balances the result reports, and the result's postings are
--     built from the rows just written (ledger._finish re-read them); the result is stored on
--     the operation row with the same UPDATE.
-- The other operations keep using the 0002 helpers, unchanged.
CREATE OR REPLACE FUNCTION ledger.burn(p_key text, p_shopper bigint, p_partner bigint,
                                       p_points bigint, p_redemption_price bigint,
                                       p_metadata jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_args jsonb;
    w ledger.wallet;
    v_entry bigint;
    v_taken bigint;
    v_value bigint;
    v_paid bigint;
    v_wallet_name text;
    v_accounts ledger.account[];
    a_issued ledger.account;
    a_deferred ledger.account;
    a_settlement ledger.account;
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
    IF (p_redemption_price >= 0) IS NOT TRUE THEN
        PERFORM ledger._fail('invalid_argument', jsonb_build_object(
            'field', 'redemption_price_micros', 'reason', 'must not be negative'));
    END IF;
    IF p_partner IS NULL THEN
        PERFORM ledger._fail('invalid_argument',
            jsonb_build_object('field', 'partner_id', 'reason', 'required'));
    END IF;
    v_args := jsonb_build_object(
        'shopper_id', p_shopper, 'partner_id', p_partner, 'points', p_points,
        'redemption_price_micros', p_redemption_price,
        'metadata', coalesce(p_metadata, '{}'::jsonb));
    -- ledger._claim, inline for the first use of a key.
    IF p_key IS NULL OR length(p_key) NOT BETWEEN 1 AND 200 THEN
        PERFORM ledger._fail('invalid_argument', jsonb_build_object(
            'field', 'idempotency_key', 'reason', 'must be 1 to 200 characters'));
    END IF;
    INSERT INTO ledger.operation (idempotency_key, operation, args)
    VALUES (p_key, 'burn', v_args)
    ON CONFLICT (idempotency_key) DO NOTHING;
    IF NOT FOUND THEN
        -- Taken (and committed, or by this transaction): a replay or a conflict.
        RETURN ledger._claim(p_key, 'burn', v_args);
    END IF;

    -- ledger._lock_wallet: its SELECT inline, the wallet's creation left to it.
    SELECT * INTO w FROM ledger.wallet WHERE shopper_id = p_shopper FOR UPDATE;
    IF NOT FOUND THEN
        w := ledger._lock_wallet(p_shopper);
    END IF;
    IF w.available < p_points THEN
        PERFORM ledger._fail('insufficient_points', jsonb_build_object(
            'available', greatest(w.available, 0), 'requested', p_points));
    END IF;

    INSERT INTO ledger.entry (kind, idempotency_key, shopper_id, partner_id, corrects_entry_id,
                              args, metadata)
    VALUES ('burn', p_key, p_shopper, p_partner, NULL, v_args,
            coalesce(p_metadata, '{}'::jsonb))
    RETURNING entry_id INTO v_entry;
    INSERT INTO ledger.seal_queue (entry_id) VALUES (v_entry);

    -- ledger._take_free(p_shopper, p_points, v_entry, true) in one statement. The wallet lock
    -- is held, so the lots read are the lots updated. `before` is what the earlier lots (in
    -- the order) hold: a lot is taken from while before < p_points.
    WITH free AS (
        SELECT l.lot_id, l.remaining - l.reserved AS free, l.issue_price_micros,
               sum(l.remaining - l.reserved) OVER (
                   ORDER BY l.expires_at NULLS LAST, l.lot_id
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
        FROM ledger.lot l
        WHERE l.shopper_id = p_shopper AND l.remaining > l.reserved
    ),
    take AS (
        SELECT f.lot_id, f.issue_price_micros,
               least(f.free, p_points - coalesce(f.before, 0))::bigint AS take
        FROM free f
        WHERE coalesce(f.before, 0) < p_points
    ),
    updated AS (
        UPDATE ledger.lot l SET remaining = l.remaining - t.take
        FROM take t
        WHERE l.shopper_id = p_shopper AND l.lot_id = t.lot_id
        RETURNING t.lot_id, t.take, t.issue_price_micros
    ),
    consumed AS (
        INSERT INTO ledger.consumption (shopper_id, entry_id, lot_id, points,
                                        issue_price_micros)
        SELECT p_shopper, v_entry, u.lot_id, u.take, u.issue_price_micros FROM updated u
        RETURNING points, points * issue_price_micros AS value_micros
    )
    SELECT coalesce(sum(c.points), 0), coalesce(sum(c.value_micros), 0)
    INTO v_taken, v_value FROM consumed c;
    IF v_taken <> p_points THEN
        PERFORM ledger._fail('ledger_inconsistent', jsonb_build_object(
            'reason', 'lots do not cover the wallet', 'shopper_id', p_shopper));
    END IF;

    IF p_redemption_price > 0 AND p_points > 9223372036854775807 / p_redemption_price THEN
        -- points x redemption price overflows bigint: 0002's statements, so that the error is
        -- raised after the same rows (and sequence values) as before.
        PERFORM ledger._post_shopper(v_entry, w.wallet_account_id, -p_points);
        PERFORM ledger._post(v_entry, ledger._network('points_issued'), p_points);
        PERFORM ledger._post(v_entry, ledger._network('deferred_revenue'), v_value);
        PERFORM ledger._post(v_entry, ledger._account('partner', p_partner, 'settlement'),
                             -p_points * p_redemption_price);
        PERFORM ledger._post(v_entry, ledger._network('redemption_margin'),
                             p_points * p_redemption_price - v_value);
        UPDATE ledger.wallet SET available = available - p_points
        WHERE shopper_id = p_shopper;
        RETURN ledger._finish(p_key, v_entry, 'burn', p_shopper,
            jsonb_build_object('points', p_points));
    END IF;
    v_paid := p_points * p_redemption_price;

    -- Accounts are never updated or deleted (account_no_delete), so reading them together is
    -- reading them one by one; a missing one is created below in 0002's order.
    SELECT (SELECT a.name FROM ledger.account a WHERE a.account_id = w.wallet_account_id),
           ARRAY[
               (SELECT a FROM ledger.account a
                WHERE a.owner_kind = 'network' AND a.owner_id = 0
                  AND a.purpose = 'points_issued'),
               (SELECT a FROM ledger.account a
                WHERE a.owner_kind = 'network' AND a.owner_id = 0
                  AND a.purpose = 'deferred_revenue'),
               (SELECT a FROM ledger.account a
                WHERE a.owner_kind = 'partner' AND a.owner_id = p_partner
                  AND a.purpose = 'settlement'),
               (SELECT a FROM ledger.account a
                WHERE a.owner_kind = 'network' AND a.owner_id = 0
                  AND a.purpose = 'redemption_margin')]
    INTO v_wallet_name, v_accounts;
    a_issued := v_accounts[1];
    a_deferred := v_accounts[2];
    a_settlement := v_accounts[3];
    a_margin := v_accounts[4];
    IF a_issued.account_id IS NULL THEN
        a_issued := ledger._network('points_issued');
    END IF;
    IF a_deferred.account_id IS NULL THEN
        a_deferred := ledger._network('deferred_revenue');
    END IF;
    IF a_settlement.account_id IS NULL THEN
        a_settlement := ledger._account('partner', p_partner, 'settlement');
    END IF;
    IF a_margin.account_id IS NULL THEN
        a_margin := ledger._network('redemption_margin');
    END IF;

    -- The postings in 0002's order (ledger._post_shopper, then ledger._post for each account),
    -- zero amounts skipped; each posting to a rollup account also queued as a balance delta.
    IF v_value <> 0 AND v_paid <> 0 AND v_paid <> v_value
       AND a_issued.rollup AND a_deferred.rollup AND a_settlement.rollup AND a_margin.rollup THEN
        -- The usual burn: five non-zero postings, four of them to rollup accounts.
        INSERT INTO ledger.posting (entry_id, account_id, asset, amount)
        VALUES (v_entry, w.wallet_account_id, 'PTS', -p_points),
               (v_entry, a_issued.account_id, a_issued.asset, p_points),
               (v_entry, a_deferred.account_id, a_deferred.asset, v_value),
               (v_entry, a_settlement.account_id, a_settlement.asset, -v_paid),
               (v_entry, a_margin.account_id, a_margin.asset, v_paid - v_value);
        INSERT INTO ledger.balance_delta (account_id, entry_id, amount)
        VALUES (a_issued.account_id, v_entry, p_points),
               (a_deferred.account_id, v_entry, v_value),
               (a_settlement.account_id, v_entry, -v_paid),
               (a_margin.account_id, v_entry, v_paid - v_value);
        v_postings := jsonb_build_array(
            jsonb_build_object('account', v_wallet_name, 'asset', 'PTS', 'amount', -p_points),
            jsonb_build_object('account', a_issued.name, 'asset', a_issued.asset,
                               'amount', p_points),
            jsonb_build_object('account', a_deferred.name, 'asset', a_deferred.asset,
                               'amount', v_value),
            jsonb_build_object('account', a_settlement.name, 'asset', a_settlement.asset,
                               'amount', -v_paid),
            jsonb_build_object('account', a_margin.name, 'asset', a_margin.asset,
                               'amount', v_paid - v_value));
    ELSE
        -- A zero amount (free lots, a zero redemption price, or no margin): the same rows,
        -- listed and filtered.
        WITH p (ord, account_id, name, asset, amount, rollup) AS MATERIALIZED (
            SELECT * FROM (VALUES
                (1, w.wallet_account_id, v_wallet_name, 'PTS', -p_points, false),
                (2, a_issued.account_id, a_issued.name, a_issued.asset, p_points,
                 a_issued.rollup),
                (3, a_deferred.account_id, a_deferred.name, a_deferred.asset, v_value,
                 a_deferred.rollup),
                (4, a_settlement.account_id, a_settlement.name, a_settlement.asset, -v_paid,
                 a_settlement.rollup),
                (5, a_margin.account_id, a_margin.name, a_margin.asset, v_paid - v_value,
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

    UPDATE ledger.wallet SET available = available - p_points
    WHERE shopper_id = p_shopper
    RETURNING available, held, debt_points INTO v_available, v_held, v_debt_points;

    -- ledger._finish
    v := jsonb_build_object(
        'entry_id', v_entry,
        'kind', 'burn',
        'shopper_id', p_shopper,
        'balance_after', v_available,
        'held_after', v_held,
        'debt_points_after', v_debt_points,
        'postings', coalesce(v_postings, '[]'::jsonb)
    ) || jsonb_build_object('points', p_points);
    UPDATE ledger.operation SET entry_id = v_entry, result = v
    WHERE idempotency_key = p_key;
    RETURN v || '{"replayed": false}'::jsonb;
END $$;
