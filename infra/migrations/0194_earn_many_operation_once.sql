-- Issue 18: ledger.earn_many (0093) writes each earn's ledger.operation row once, with its
-- result. It claimed the key with a bare row (INSERT ... ON CONFLICT DO NOTHING) and stored
-- the result at its end with an UPDATE of every claimed row: a second heap tuple, a second
-- primary-key entry (the UPDATE was not HOT: the rows of one call fill their pages) and its
-- WAL, ~11% of the batch write's PostgreSQL time in the profile of `POST /v1/purchases/batch`.
-- Everything the result says is known before the first write: the entry and lot ids are
-- drawn from their sequences first (a key found taken leaves an unused id, as a rolled-back
-- call does), and the balances after are the locked wallets' plus the points. The claim is
-- still the first write and still the row whose unique index makes a concurrent call with the
-- same key wait until this one ends (then it is left out, for ledger.earn to replay). The
-- rows written are the same as 0093's, value for value (tests/integration/
-- test_purchase_write_many.py compares them with the single path's). Same signature, so
-- partner_purchase_write_many (0093, 0192) calls it unchanged; enable_seqscan = off as 0097.
-- Measured with tests/load/earn_many_cpu.py: ~450 B less WAL per earn (-9%) and a smaller
-- table; the backend CPU saved is below the run-to-run noise (docs/performance.md).

CREATE OR REPLACE FUNCTION ledger.earn_many(
    p_requests ledger.earn_request[], p_lock_shopper_ids bigint[]
) RETURNS SETOF ledger.earn_posted LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    v_items ledger.earn_many_item[];
    v_posted ledger.earn_posted[];
    a_issued ledger.account;
    a_deferred ledger.account;
    v_new_shoppers bigint[];
    v_unlocked integer;
BEGIN
    IF (SELECT count(DISTINCT r.shopper_id) <> count(*) FROM unnest(p_requests) r) THEN
        RAISE EXCEPTION 'ledger.earn_many: a shopper twice';
    END IF;

    -- A shopper's first use: its wallet and held accounts and its wallet row, the rows
    -- ledger._lock_wallet makes (through ledger._account, 0086), in shopper id order.
    SELECT array_agg(DISTINCT r.shopper_id ORDER BY r.shopper_id) INTO v_new_shoppers
    FROM unnest(p_requests) r
    WHERE r.shopper_id > 0
      AND NOT EXISTS (SELECT 1 FROM ledger.wallet w WHERE w.shopper_id = r.shopper_id);
    IF v_new_shoppers IS NOT NULL THEN
        INSERT INTO ledger.account (owner_kind, owner_id, purpose, asset, floor_rule, rollup)
        SELECT 'shopper', s.shopper_id, a.purpose, 'PTS', a.floor_rule, false
        FROM unnest(v_new_shoppers) WITH ORDINALITY AS s (shopper_id, k)
        CROSS JOIN (VALUES (1, 'wallet', 'non_negative_except_clawback'),
                           (2, 'held', 'non_negative')) AS a (ord, purpose, floor_rule)
        ORDER BY s.k, a.ord
        ON CONFLICT DO NOTHING;
        INSERT INTO ledger.wallet (shopper_id, wallet_account_id, held_account_id)
        SELECT s.shopper_id, wa.account_id, ha.account_id
        FROM unnest(v_new_shoppers) WITH ORDINALITY AS s (shopper_id, k)
        JOIN ledger.account wa ON wa.owner_kind = 'shopper' AND wa.owner_id = s.shopper_id
                              AND wa.purpose = 'wallet'
        JOIN ledger.account ha ON ha.owner_kind = 'shopper' AND ha.owner_id = s.shopper_id
                              AND ha.purpose = 'held'
        ORDER BY s.k
        ON CONFLICT (shopper_id) DO NOTHING;
    END IF;
    PERFORM 1 FROM ledger.wallet w WHERE w.shopper_id = ANY (p_lock_shopper_ids)
    ORDER BY w.shopper_id FOR UPDATE;
    -- The balances stored below are read before the wallet UPDATE: every wallet written must
    -- be locked by then. The callers list every shopper in p_lock_shopper_ids (or locked them
    -- in an earlier round of the same transaction), so this locks nothing new for them.
    PERFORM 1 FROM ledger.wallet w
    WHERE w.shopper_id IN (SELECT r.shopper_id FROM unnest(p_requests) r)
      AND w.shopper_id <> ALL (coalesce(p_lock_shopper_ids, '{}'))
    ORDER BY w.shopper_id FOR UPDATE;

    SELECT * INTO a_issued FROM ledger.account a
    WHERE a.owner_kind = 'network' AND a.owner_id = 0 AND a.purpose = 'points_issued';
    SELECT * INTO a_deferred FROM ledger.account a
    WHERE a.owner_kind = 'network' AND a.owner_id = 0 AND a.purpose = 'deferred_revenue';
    IF (a_issued.rollup AND a_deferred.rollup) IS NOT TRUE THEN
        RETURN;  -- the network accounts are not made yet: ledger.earn makes them
    END IF;

    -- The earns ledger.earn would post on its usual path (see the header).
    SELECT array_agg(ROW(
               r.n, r.idempotency_key, r.shopper_id, r.partner_id, r.points,
               r.issue_price_micros, r.expires_at, coalesce(r.metadata, '{}'::jsonb),
               jsonb_build_object(
                   'shopper_id', r.shopper_id, 'partner_id', r.partner_id,
                   'points', r.points, 'issue_price_micros', r.issue_price_micros,
                   'expires_at', ledger._ts(r.expires_at),
                   'metadata', coalesce(r.metadata, '{}'::jsonb)),
               w.wallet_account_id, wa.name, pa.account_id, pa.name, pa.asset
           )::ledger.earn_many_item ORDER BY r.n)
    INTO v_items
    FROM unnest(p_requests) r
    JOIN ledger.wallet w ON w.shopper_id = r.shopper_id
    JOIN ledger.account wa ON wa.account_id = w.wallet_account_id
    JOIN ledger.account pa ON pa.owner_kind = 'partner' AND pa.owner_id = r.partner_id
                          AND pa.purpose = 'settlement'
    WHERE w.merged_into_shopper_id IS NULL AND w.debt_points = 0 AND pa.rollup
      AND r.issue_price_micros > 0 AND r.points > 0
      AND r.points <= 9223372036854775807 / r.issue_price_micros
      AND length(r.idempotency_key) BETWEEN 1 AND 200;
    IF v_items IS NULL THEN
        RETURN;
    END IF;

    -- What each earn will post, known before anything is written: its entry and lot ids (the
    -- identity and lot sequences, in request order) and the wallet's balances after it (the
    -- wallet is locked; one earn per shopper). So the claim below stores the result at once.
    SELECT array_agg(ROW(p.n, nextval('ledger.entry_entry_id_seq'), nextval('ledger.lot_id_seq'),
                         p.available + p.points, p.held, p.debt_points)::ledger.earn_posted
                     ORDER BY p.n)
    INTO v_posted
    FROM (SELECT x.n, x.points, w.available, w.held, w.debt_points
          FROM unnest(v_items) x JOIN ledger.wallet w ON w.shopper_id = x.shopper_id
          ORDER BY x.n) p;
    ASSERT cardinality(v_posted) = cardinality(v_items), 'ledger.earn_many: a wallet per earn';

    -- The idempotency claims, each with its result (ledger._finish's, as 0087 stores it): the
    -- row is written once. A key already taken stays with ledger.earn; a concurrent call with
    -- the same key waits on the unique index here, before any other write, as before 0194.
    WITH claimed AS (
        INSERT INTO ledger.operation (idempotency_key, operation, args, entry_id, result)
        SELECT x.idempotency_key, 'earn', x.args, d.entry_id,
               jsonb_build_object(
                   'entry_id', d.entry_id,
                   'kind', 'earn',
                   'shopper_id', x.shopper_id,
                   'balance_after', d.balance_after,
                   'held_after', d.held_after,
                   'debt_points_after', d.debt_points_after,
                   'postings', jsonb_build_array(
                       jsonb_build_object('account', x.wallet_name, 'asset', 'PTS',
                                          'amount', x.points),
                       jsonb_build_object('account', a_issued.name, 'asset', a_issued.asset,
                                          'amount', -x.points),
                       jsonb_build_object('account', x.payer_name, 'asset', x.payer_asset,
                                          'amount', x.points * x.issue_price_micros),
                       jsonb_build_object('account', a_deferred.name, 'asset', a_deferred.asset,
                                          'amount', -x.points * x.issue_price_micros))
               ) || jsonb_build_object('points', x.points, 'lot_id', d.lot_id)
        FROM unnest(v_items) x JOIN unnest(v_posted) d ON d.n = x.n
        ORDER BY x.n
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING idempotency_key
    )
    SELECT array_agg(x ORDER BY x.n) INTO v_items
    FROM unnest(v_items) x WHERE x.idempotency_key IN (SELECT idempotency_key FROM claimed);
    IF v_items IS NULL THEN
        RETURN;
    END IF;
    SELECT array_agg(d ORDER BY d.n) INTO v_posted
    FROM unnest(v_posted) d WHERE d.n IN (SELECT x.n FROM unnest(v_items) x);

    INSERT INTO ledger.entry (entry_id, kind, idempotency_key, shopper_id, partner_id,
                              corrects_entry_id, args, metadata)
    OVERRIDING SYSTEM VALUE
    SELECT d.entry_id, 'earn', x.idempotency_key, x.shopper_id, x.partner_id, NULL, x.args,
           x.metadata
    FROM unnest(v_items) x JOIN unnest(v_posted) d ON d.n = x.n
    ORDER BY x.n;

    INSERT INTO ledger.seal_queue (entry_id)
    SELECT d.entry_id FROM unnest(v_posted) d ORDER BY d.entry_id;
    INSERT INTO ledger.lot (shopper_id, lot_id, root_lot_id, entry_id, partner_id,
                            issue_price_micros, origin, expires_at, points, remaining)
    SELECT x.shopper_id, d.lot_id, d.lot_id, d.entry_id, x.partner_id, x.issue_price_micros,
           'earn', x.expires_at, x.points, x.points
    FROM unnest(v_items) x JOIN unnest(v_posted) d ON d.n = x.n
    ORDER BY x.n;
    INSERT INTO ledger.posting (entry_id, account_id, asset, amount)
    SELECT d.entry_id, p.account_id, p.asset, p.amount
    FROM unnest(v_items) x JOIN unnest(v_posted) d ON d.n = x.n
    CROSS JOIN LATERAL (VALUES
        (1, x.wallet_account_id, 'PTS', x.points),
        (2, a_issued.account_id, a_issued.asset, -x.points),
        (3, x.payer_account_id, x.payer_asset, x.points * x.issue_price_micros),
        (4, a_deferred.account_id, a_deferred.asset, -x.points * x.issue_price_micros)
    ) AS p (ord, account_id, asset, amount)
    ORDER BY x.n, p.ord;
    INSERT INTO ledger.balance_delta (account_id, entry_id, amount)
    SELECT b.account_id, d.entry_id, b.amount
    FROM unnest(v_items) x JOIN unnest(v_posted) d ON d.n = x.n
    CROSS JOIN LATERAL (VALUES
        (1, a_issued.account_id, -x.points),
        (2, x.payer_account_id, x.points * x.issue_price_micros),
        (3, a_deferred.account_id, -x.points * x.issue_price_micros)
    ) AS b (ord, account_id, amount)
    ORDER BY x.n, b.ord;

    WITH wallet AS (
        UPDATE ledger.wallet w
        SET available = w.available + x.points
        FROM unnest(v_items) x
        WHERE w.shopper_id = x.shopper_id
        RETURNING x.n, w.available
    )
    SELECT count(*) INTO v_unlocked
    FROM wallet u JOIN unnest(v_posted) d ON d.n = u.n
    WHERE u.available IS DISTINCT FROM d.balance_after;
    -- The stored balances were read under the wallet locks: they must be what was written.
    ASSERT v_unlocked = 0, 'ledger.earn_many: a wallet changed after its balance was read';

    RETURN QUERY SELECT d.* FROM unnest(v_posted) d ORDER BY d.n;
END $$;
