-- ledger.hold and ledger.capture with fewer statements, as 0087 (earn) and 0091 (burn) did.
-- Same arguments, results, errors, locks, rows and sequence values as 0002's versions. What
-- changed, in both:
--   * the argument checks and the idempotency claim are inline; a key already taken goes to
--     ledger._claim, which re-runs the (conflicting) INSERT and answers replay or conflict;
--   * the wallet is locked with the same SELECT ... FOR UPDATE (hold: ledger._lock_wallet for a
--     missing wallet or an invalid shopper id; capture: ledger._lock_open_hold's steps inline,
--     in its order: find the hold's shopper, lock the wallet, lock the hold, check its state);
--   * the lots are reserved (hold) or consumed (capture) in one statement instead of a loop:
--     the same lots in the same order (expires_at NULLS LAST, lot_id), the same UPDATEs and the
--     same hold_lot / consumption rows;
--   * the postings (in 0002's order, zero amounts skipped) are one INSERT, the balance deltas
--     another; the result is built from the values just written (ledger._finish re-read them)
--     and stored on the operation row with the same UPDATE.
-- capture runs 0002's own statements from the hold's UPDATE on when the wallet is in debt
-- (ledger._repay_debt nets it) or points x redemption price overflows bigint (the error comes
-- after the same rows and sequence values). The other operations are unchanged.
CREATE OR REPLACE FUNCTION ledger.hold(p_key text, p_shopper bigint, p_partner bigint,
                                       p_points bigint, p_expires_at timestamptz,
                                       p_metadata jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_args jsonb;
    w ledger.wallet;
    v_entry bigint;
    v_hold bigint;
    v_reserved bigint;
    v_wallet_name text;
    v_held_name text;
    v_available bigint;
    v_held bigint;
    v_debt_points bigint;
    v jsonb;
BEGIN
    IF (p_points > 0) IS NOT TRUE THEN
        PERFORM ledger._fail('invalid_argument',
            jsonb_build_object('field', 'points', 'reason', 'must be positive'));
    END IF;
    IF p_partner IS NULL THEN
        PERFORM ledger._fail('invalid_argument',
            jsonb_build_object('field', 'partner_id', 'reason', 'required'));
    END IF;
    IF p_expires_at IS NULL THEN
        PERFORM ledger._fail('invalid_argument',
            jsonb_build_object('field', 'expires_at', 'reason', 'required'));
    END IF;
    v_args := jsonb_build_object(
        'shopper_id', p_shopper, 'partner_id', p_partner, 'points', p_points,
        'expires_at', ledger._ts(p_expires_at), 'metadata', coalesce(p_metadata, '{}'::jsonb));
    -- ledger._claim, inline for the first use of a key.
    IF p_key IS NULL OR length(p_key) NOT BETWEEN 1 AND 200 THEN
        PERFORM ledger._fail('invalid_argument', jsonb_build_object(
            'field', 'idempotency_key', 'reason', 'must be 1 to 200 characters'));
    END IF;
    INSERT INTO ledger.operation (idempotency_key, operation, args)
    VALUES (p_key, 'hold', v_args)
    ON CONFLICT (idempotency_key) DO NOTHING;
    IF NOT FOUND THEN
        RETURN ledger._claim(p_key, 'hold', v_args);
    END IF;

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
    VALUES ('hold', p_key, p_shopper, p_partner, NULL, v_args,
            coalesce(p_metadata, '{}'::jsonb))
    RETURNING entry_id INTO v_entry;
    INSERT INTO ledger.seal_queue (entry_id) VALUES (v_entry);
    v_hold := nextval('ledger.hold_id_seq');
    INSERT INTO ledger.hold (shopper_id, hold_id, partner_id, points, expires_at, entry_id)
    VALUES (p_shopper, v_hold, p_partner, p_points, p_expires_at, v_entry);

    -- Reserve the lot points the hold would consume, soonest expiry first: 0002's loop in one
    -- statement (a lot is reserved from while the earlier lots hold less than p_points).
    WITH free AS (
        SELECT l.lot_id, l.remaining - l.reserved AS free,
               sum(l.remaining - l.reserved) OVER (
                   ORDER BY l.expires_at NULLS LAST, l.lot_id
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
        FROM ledger.lot l
        WHERE l.shopper_id = p_shopper AND l.remaining > l.reserved
    ),
    take AS (
        SELECT f.lot_id, least(f.free, p_points - coalesce(f.before, 0))::bigint AS take
        FROM free f
        WHERE coalesce(f.before, 0) < p_points
    ),
    updated AS (
        UPDATE ledger.lot l SET reserved = l.reserved + t.take
        FROM take t
        WHERE l.shopper_id = p_shopper AND l.lot_id = t.lot_id
        RETURNING t.lot_id, t.take
    ),
    reserved AS (
        INSERT INTO ledger.hold_lot (shopper_id, hold_id, lot_id, points)
        SELECT p_shopper, v_hold, u.lot_id, u.take FROM updated u
        RETURNING points
    )
    SELECT coalesce(sum(r.points), 0) INTO v_reserved FROM reserved r;
    IF v_reserved <> p_points THEN
        PERFORM ledger._fail('ledger_inconsistent', jsonb_build_object(
            'reason', 'lots do not cover the wallet', 'shopper_id', p_shopper));
    END IF;

    -- ledger._post_shopper twice (both amounts non-zero), in 0002's order.
    INSERT INTO ledger.posting (entry_id, account_id, asset, amount)
    VALUES (v_entry, w.wallet_account_id, 'PTS', -p_points),
           (v_entry, w.held_account_id, 'PTS', p_points);
    SELECT (SELECT a.name FROM ledger.account a WHERE a.account_id = w.wallet_account_id),
           (SELECT a.name FROM ledger.account a WHERE a.account_id = w.held_account_id)
    INTO v_wallet_name, v_held_name;
    UPDATE ledger.wallet SET available = available - p_points, held = held + p_points
    WHERE shopper_id = p_shopper
    RETURNING available, held, debt_points INTO v_available, v_held, v_debt_points;

    -- ledger._finish
    v := jsonb_build_object(
        'entry_id', v_entry,
        'kind', 'hold',
        'shopper_id', p_shopper,
        'balance_after', v_available,
        'held_after', v_held,
        'debt_points_after', v_debt_points,
        'postings', jsonb_build_array(
            jsonb_build_object('account', v_wallet_name, 'asset', 'PTS', 'amount', -p_points),
            jsonb_build_object('account', v_held_name, 'asset', 'PTS', 'amount', p_points))
    ) || jsonb_build_object('points', p_points, 'hold_id', v_hold);
    UPDATE ledger.operation SET entry_id = v_entry, result = v
    WHERE idempotency_key = p_key;
    RETURN v || '{"replayed": false}'::jsonb;
END $$;

CREATE OR REPLACE FUNCTION ledger.capture(p_key text, p_hold_id bigint, p_points bigint,
                                          p_redemption_price bigint, p_metadata jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_args jsonb;
    v_shopper bigint;
    h ledger.hold;
    w ledger.wallet;
    r record;
    v_entry bigint;
    v_taken bigint;
    v_value bigint;
    v_paid bigint;
    v_names text[];
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
    v_args := jsonb_build_object(
        'hold_id', p_hold_id, 'points', p_points, 'redemption_price_micros', p_redemption_price,
        'metadata', coalesce(p_metadata, '{}'::jsonb));
    -- ledger._claim, inline for the first use of a key.
    IF p_key IS NULL OR length(p_key) NOT BETWEEN 1 AND 200 THEN
        PERFORM ledger._fail('invalid_argument', jsonb_build_object(
            'field', 'idempotency_key', 'reason', 'must be 1 to 200 characters'));
    END IF;
    INSERT INTO ledger.operation (idempotency_key, operation, args)
    VALUES (p_key, 'capture', v_args)
    ON CONFLICT (idempotency_key) DO NOTHING;
    IF NOT FOUND THEN
        RETURN ledger._claim(p_key, 'capture', v_args);
    END IF;

    -- ledger._lock_open_hold, inline: the wallet, then the hold.
    SELECT hold.shopper_id INTO v_shopper FROM ledger.hold WHERE hold.hold_id = p_hold_id;
    IF NOT FOUND THEN
        PERFORM ledger._fail('hold_not_found', jsonb_build_object('hold_id', p_hold_id));
    END IF;
    SELECT * INTO w FROM ledger.wallet WHERE shopper_id = v_shopper FOR UPDATE;
    IF NOT FOUND THEN
        w := ledger._lock_wallet(v_shopper);
    END IF;
    SELECT * INTO STRICT h FROM ledger.hold
    WHERE shopper_id = v_shopper AND hold_id = p_hold_id FOR UPDATE;
    IF h.state <> 'open' THEN
        PERFORM ledger._fail('hold_not_open',
            jsonb_build_object('hold_id', p_hold_id, 'state', h.state));
    END IF;
    IF p_points > h.points THEN
        PERFORM ledger._fail('capture_exceeds_hold', jsonb_build_object(
            'hold_id', p_hold_id, 'held', h.points, 'requested', p_points));
    END IF;
    -- 0002 re-read the wallet here; it is locked by this transaction, so w is that row.

    INSERT INTO ledger.entry (kind, idempotency_key, shopper_id, partner_id, corrects_entry_id,
                              args, metadata)
    VALUES ('capture', p_key, h.shopper_id, h.partner_id, h.entry_id, v_args,
            coalesce(p_metadata, '{}'::jsonb))
    RETURNING entry_id INTO v_entry;
    INSERT INTO ledger.seal_queue (entry_id) VALUES (v_entry);

    -- 0002's loop over the hold's lots (soonest expiry first) in one statement: every lot's
    -- reservation is released, the first p_points are consumed (a consumption row per lot
    -- that gives any).
    WITH held AS (
        SELECT hl.lot_id, hl.points, lot.issue_price_micros,
               sum(hl.points) OVER (
                   ORDER BY lot.expires_at NULLS LAST, lot.lot_id
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
        FROM ledger.hold_lot hl
        JOIN ledger.lot lot ON lot.shopper_id = hl.shopper_id AND lot.lot_id = hl.lot_id
        WHERE hl.shopper_id = h.shopper_id AND hl.hold_id = h.hold_id
    ),
    take AS (
        SELECT t.lot_id, t.points, t.issue_price_micros,
               greatest(least(t.points, p_points - coalesce(t.before, 0)), 0)::bigint AS take
        FROM held t
    ),
    updated AS (
        UPDATE ledger.lot l
        SET reserved = l.reserved - t.points, remaining = l.remaining - t.take
        FROM take t
        WHERE l.shopper_id = h.shopper_id AND l.lot_id = t.lot_id
        RETURNING t.lot_id, t.take, t.issue_price_micros
    ),
    consumed AS (
        INSERT INTO ledger.consumption (shopper_id, entry_id, lot_id, points,
                                        issue_price_micros)
        SELECT h.shopper_id, v_entry, u.lot_id, u.take, u.issue_price_micros
        FROM updated u WHERE u.take > 0
        RETURNING points, points * issue_price_micros AS value_micros
    )
    SELECT coalesce(sum(c.points), 0), coalesce(sum(c.value_micros), 0)
    INTO v_taken, v_value FROM consumed c;
    IF v_taken <> p_points THEN
        PERFORM ledger._fail('ledger_inconsistent', jsonb_build_object(
            'reason', 'hold lots do not cover the hold', 'hold_id', p_hold_id));
    END IF;

    IF w.debt_points <> 0
       OR (p_redemption_price > 0 AND p_points > 9223372036854775807 / p_redemption_price) THEN
        -- In debt (ledger._repay_debt nets it), or points x redemption price overflows
        -- bigint: 0002's statements from here on.
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
    END IF;
    v_paid := p_points * p_redemption_price;

    UPDATE ledger.hold SET state = 'captured', captured_points = p_points,
                           closed_entry_id = v_entry
    WHERE shopper_id = h.shopper_id AND hold_id = h.hold_id;

    -- Accounts are never updated or deleted (account_no_delete), so reading them together is
    -- reading them one by one; a missing one is created below in 0002's order.
    SELECT ARRAY[(SELECT a.name FROM ledger.account a WHERE a.account_id = w.held_account_id),
                 (SELECT a.name FROM ledger.account a WHERE a.account_id = w.wallet_account_id)],
           ARRAY[
               (SELECT a FROM ledger.account a
                WHERE a.owner_kind = 'network' AND a.owner_id = 0
                  AND a.purpose = 'points_issued'),
               (SELECT a FROM ledger.account a
                WHERE a.owner_kind = 'network' AND a.owner_id = 0
                  AND a.purpose = 'deferred_revenue'),
               (SELECT a FROM ledger.account a
                WHERE a.owner_kind = 'partner' AND a.owner_id = h.partner_id
                  AND a.purpose = 'settlement'),
               (SELECT a FROM ledger.account a
                WHERE a.owner_kind = 'network' AND a.owner_id = 0
                  AND a.purpose = 'redemption_margin')]
    INTO v_names, v_accounts;
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
        a_settlement := ledger._account('partner', h.partner_id, 'settlement');
    END IF;
    IF a_margin.account_id IS NULL THEN
        a_margin := ledger._network('redemption_margin');
    END IF;

    -- The postings in 0002's order (held, wallet, then ledger._post for each account), zero
    -- amounts skipped; each posting to a rollup account also queued as a balance delta.
    WITH p (ord, account_id, name, asset, amount, rollup) AS MATERIALIZED (
        SELECT * FROM (VALUES
            (1, w.held_account_id, v_names[1], 'PTS', -h.points, false),
            (2, w.wallet_account_id, v_names[2], 'PTS', h.points - p_points, false),
            (3, a_issued.account_id, a_issued.name, a_issued.asset, p_points, a_issued.rollup),
            (4, a_deferred.account_id, a_deferred.name, a_deferred.asset, v_value,
             a_deferred.rollup),
            (5, a_settlement.account_id, a_settlement.name, a_settlement.asset, -v_paid,
             a_settlement.rollup),
            (6, a_margin.account_id, a_margin.name, a_margin.asset, v_paid - v_value,
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

    -- Not in debt: ledger._repay_debt would have returned at once (nothing repaid).
    UPDATE ledger.wallet
    SET held = held - h.points, available = available + (h.points - p_points)
    WHERE shopper_id = h.shopper_id
    RETURNING available, held, debt_points INTO v_available, v_held, v_debt_points;

    -- ledger._finish
    v := jsonb_build_object(
        'entry_id', v_entry,
        'kind', 'capture',
        'shopper_id', h.shopper_id,
        'balance_after', v_available,
        'held_after', v_held,
        'debt_points_after', v_debt_points,
        'postings', coalesce(v_postings, '[]'::jsonb)
    ) || jsonb_build_object('points', p_points, 'hold_id', p_hold_id);
    UPDATE ledger.operation SET entry_id = v_entry, result = v
    WHERE idempotency_key = p_key;
    RETURN v || '{"replayed": false}'::jsonb;
END $$;
