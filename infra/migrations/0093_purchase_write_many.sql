-- Issue 7: many plain purchases written in one call, set-based, in two layers:
--   * ledger.earn_many: many earns (distinct shoppers) at once, writing exactly the rows
--     ledger.earn (0087) writes on its usual path: the operation claim, the entry, the
--     seal-queue row, the lot, the four postings (wallet, points_issued, the payer's settlement
--     account, deferred_revenue) and the three balance deltas, the wallet UPDATE and the stored
--     result (the same jsonb, so a later replay of a key answers as if it were posted alone);
--   * partner_purchase_write_many: what partner_purchase_write (0085) does around ledger.earn,
--     table by table: the partner_transactions rows, the basket lines, the breakdown, the tier
--     qualification (QUALIFICATION_12M's), the tier row ensured and locked when an upper tier
--     is qualified for, and the purchase.recorded event unless the tier goes up (then the
--     caller changes the tier and records the event after it, as after 0085).
-- `partners.purchase_many` sends here the items of a `POST /v1/purchases/batch` call, or the
-- purchases of a group commit (gateway/group_commit.py), that need nothing but partner-paid
-- points (base and tier bonus: no campaign bonus, no network-paid points, no referral reward),
-- each shopper at most once per call, with the context each was read with (pricing version,
-- issue price, expiry). Every trigger and constraint fires as for single rows
-- (posting_in_entry_tx per posting, entry_balanced at commit, the aggregate queue triggers,
-- CHECKs). tests/integration/test_purchase_write_many.py (and its property twin) compare the
-- rows written here with those of the single path.
--
-- An earn is left out (its purchase unwritten, for the caller to post through the single path,
-- which then raises or posts exactly as it always did) when ledger.earn would not take its usual
-- path: a merged shopper, a wallet in debt, a zero issue price, an account missing or not a
-- rollup one, points that overflow the payer amount, a key out of bounds, or its key already
-- claimed (a replay or a conflict: the single path answers it).
--
-- A shopper without a wallet yet gets it first, as ledger.earn would make it (so an earn left
-- out for a key claimed concurrently leaves that shopper an empty wallet, which its next earn
-- would have made anyway). Locks: first the wallets of every shopper in p_lock_shopper_ids (a
-- whole batch's or group's, not only these earns') in shopper id order, so concurrent callers
-- sharing shoppers take them in one order; then the tier rows of upgrading shoppers in shopper
-- id order (a tier row is locked only after its shopper's wallet, as in the single path).
--
-- A partner_ref recorded concurrently since the caller's read makes the whole call fail with
-- SQLSTATE CLB01 (nothing of it stays: the caller rolls back to its savepoint and posts one by
-- one, where that purchase answers partner_ref_conflict). Copies of 0085 and
-- shoppers/queries.py that must stay the same: QUALIFICATION_12M, ENSURE_TIER_ROW,
-- TIER_FOR_UPDATE.

-- Ledger ------------------------------------------------------------------------------------

CREATE TYPE ledger.earn_request AS (
    n                  integer,   -- the caller's handle, returned with the result
    idempotency_key    text,
    shopper_id         bigint,
    partner_id         bigint,
    points             bigint,
    issue_price_micros bigint,
    expires_at         timestamptz,
    metadata           jsonb
);

CREATE TYPE ledger.earn_posted AS (
    n                 integer,
    entry_id          bigint,
    lot_id            bigint,
    balance_after     bigint,
    held_after        bigint,
    debt_points_after bigint
);

-- What earn_many keeps of a request between its statements.
CREATE TYPE ledger.earn_many_item AS (
    n                  integer,
    idempotency_key    text,
    shopper_id         bigint,
    partner_id         bigint,
    points             bigint,
    issue_price_micros bigint,
    expires_at         timestamptz,
    metadata           jsonb,
    args               jsonb,
    wallet_account_id  bigint,
    wallet_name        text,
    payer_account_id   bigint,
    payer_name         text,
    payer_asset        text
);

CREATE FUNCTION ledger.earn_many(p_requests ledger.earn_request[], p_lock_shopper_ids bigint[])
RETURNS SETOF ledger.earn_posted LANGUAGE plpgsql AS $$
DECLARE
    v_items ledger.earn_many_item[];
    v_posted ledger.earn_posted[];
    a_issued ledger.account;
    a_deferred ledger.account;
    v_new_shoppers bigint[];
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

    -- The idempotency claims; a key already taken stays with ledger.earn.
    WITH claimed AS (
        INSERT INTO ledger.operation (idempotency_key, operation, args)
        SELECT x.idempotency_key, 'earn', x.args FROM unnest(v_items) x ORDER BY x.n
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING idempotency_key
    )
    SELECT array_agg(x ORDER BY x.n) INTO v_items
    FROM unnest(v_items) x WHERE x.idempotency_key IN (SELECT idempotency_key FROM claimed);
    IF v_items IS NULL THEN
        RETURN;
    END IF;

    WITH entry AS (
        INSERT INTO ledger.entry (kind, idempotency_key, shopper_id, partner_id,
                                  corrects_entry_id, args, metadata)
        SELECT 'earn', x.idempotency_key, x.shopper_id, x.partner_id, NULL, x.args, x.metadata
        FROM unnest(v_items) x ORDER BY x.n
        RETURNING entry_id, idempotency_key
    ), numbered AS (
        SELECT x.n, e.entry_id FROM unnest(v_items) x
        JOIN entry e ON e.idempotency_key = x.idempotency_key
        ORDER BY x.n
    )
    SELECT array_agg(ROW(e.n, e.entry_id, nextval('ledger.lot_id_seq'), NULL, NULL, NULL
           )::ledger.earn_posted ORDER BY e.n)
    INTO v_posted FROM numbered e;

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
        RETURNING x.n, w.available, w.held, w.debt_points
    )
    SELECT array_agg(ROW(d.n, d.entry_id, d.lot_id, u.available, u.held, u.debt_points
           )::ledger.earn_posted ORDER BY d.n)
    INTO v_posted
    FROM unnest(v_posted) d JOIN wallet u ON u.n = d.n;

    -- ledger._finish's result, as 0087 stores it.
    UPDATE ledger.operation o
    SET entry_id = d.entry_id,
        result = jsonb_build_object(
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
    WHERE o.idempotency_key = x.idempotency_key;

    RETURN QUERY SELECT d.* FROM unnest(v_posted) d ORDER BY d.n;
END $$;

-- Partners ----------------------------------------------------------------------------------

CREATE TYPE partner_purchase_many_item AS (
    n               integer,   -- position in the call's arrays, from 1
    transaction_id  uuid,
    partner_id      bigint,
    partner_ref     text,
    shopper_id      bigint,
    card_number     text,
    amount_minor    bigint,
    pricing_version integer,
    idempotency_key text,      -- the gateway call's, stored on the partner_transactions row
    points          bigint,
    payload         jsonb
);

CREATE TYPE partner_purchase_many_tier AS (
    n             integer,
    shopper_id    bigint,
    points_earned bigint,
    spend_minor   bigint,
    qualified     integer,  -- rank of the best upper tier qualified for (0: none)
    tier          text      -- the locked tier row's tier when qualified > 0
);

CREATE FUNCTION partner_purchase_write_many(
    p_now timestamptz,
    p_lock_shopper_ids bigint[],
    p_transaction_ids uuid[],
    p_partner_ids bigint[],
    p_partner_refs text[],
    p_shopper_ids bigint[],
    p_card_numbers text[],
    p_amounts_minor bigint[],
    p_pricing_versions integer[],
    p_issue_prices_micros bigint[],
    p_expires_at timestamptz[],
    p_idempotency_keys text[],
    p_earn_keys text[],
    p_earn_points bigint[],
    p_earn_metadata jsonb[],
    p_event_payloads jsonb[],
    p_line_items integer[],
    p_line_categories text[],
    p_line_amounts bigint[],
    p_breakdown_items integer[],
    p_item_kinds text[],
    p_item_points bigint[],
    p_item_campaign_ids bigint[],
    p_item_payers text[],
    p_tier_names text[],
    p_tier_points_min bigint[],
    p_tier_spend_min bigint[]
) RETURNS TABLE (n integer, written boolean, balance_after bigint, points_earned bigint,
                 spend_minor bigint, tier text, event_recorded boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_items partner_purchase_many_item[];
    v_posted ledger.earn_posted[];
    v_tiers partner_purchase_many_tier[];
    v_count integer;
    v_size integer := coalesce(cardinality(p_transaction_ids), 0);
BEGIN
    IF v_size NOT IN (coalesce(cardinality(p_partner_ids), 0),
                      coalesce(cardinality(p_partner_refs), 0),
                      coalesce(cardinality(p_shopper_ids), 0),
                      coalesce(cardinality(p_card_numbers), 0),
                      coalesce(cardinality(p_amounts_minor), 0),
                      coalesce(cardinality(p_pricing_versions), 0),
                      coalesce(cardinality(p_issue_prices_micros), 0),
                      coalesce(cardinality(p_expires_at), 0),
                      coalesce(cardinality(p_idempotency_keys), 0),
                      coalesce(cardinality(p_earn_keys), 0),
                      coalesce(cardinality(p_earn_points), 0),
                      coalesce(cardinality(p_earn_metadata), 0),
                      coalesce(cardinality(p_event_payloads), 0))
       OR coalesce(cardinality(p_line_items), 0) <> coalesce(cardinality(p_line_categories), 0)
       OR coalesce(cardinality(p_line_items), 0) <> coalesce(cardinality(p_line_amounts), 0)
       OR coalesce(cardinality(p_breakdown_items), 0)
          <> coalesce(cardinality(p_item_kinds), 0) THEN
        RAISE EXCEPTION 'partner_purchase_write_many: arrays of unequal length';
    END IF;

    -- The earns (ledger.earn_many), then the purchases whose earn was posted.
    SELECT array_agg(e ORDER BY e.n) INTO v_posted
    FROM ledger.earn_many(
        ARRAY(SELECT ROW(i.n, i.earn_key, i.shopper_id, i.partner_id, i.points,
                         i.issue_price_micros, i.expires_at, i.metadata)::ledger.earn_request
              FROM unnest(p_earn_keys, p_shopper_ids, p_partner_ids, p_earn_points,
                          p_issue_prices_micros, p_expires_at, p_earn_metadata)
                   WITH ORDINALITY
                   AS i (earn_key, shopper_id, partner_id, points, issue_price_micros,
                         expires_at, metadata, n)
              ORDER BY i.n),
        p_lock_shopper_ids) e;
    IF v_posted IS NULL THEN
        RETURN QUERY
        SELECT i::integer, false, NULL::bigint, NULL::bigint, NULL::bigint, NULL::text, false
        FROM generate_subscripts(p_transaction_ids, 1) i ORDER BY i;
        RETURN;
    END IF;
    SELECT array_agg(ROW(i.n, i.transaction_id, i.partner_id, i.partner_ref, i.shopper_id,
                         i.card_number, i.amount_minor, i.pricing_version, i.idempotency_key,
                         i.points, i.payload)::partner_purchase_many_item ORDER BY i.n)
    INTO v_items
    FROM unnest(p_transaction_ids, p_partner_ids, p_partner_refs, p_shopper_ids,
                p_card_numbers, p_amounts_minor, p_pricing_versions, p_idempotency_keys,
                p_earn_points, p_event_payloads) WITH ORDINALITY
         AS i (transaction_id, partner_id, partner_ref, shopper_id, card_number, amount_minor,
               pricing_version, idempotency_key, points, payload, n)
    WHERE i.n IN (SELECT d.n FROM unnest(v_posted) d);

    WITH recorded AS (
        INSERT INTO partner_transactions (
            id, partner_id, partner_ref, kind, status, shopper_id, card_number, points,
            amount_minor, value_minor, pricing_version, original_id, ledger_entry_id,
            ledger_hold_id, expires_at, idempotency_key, network_points, network_entry_id)
        SELECT x.transaction_id, x.partner_id, x.partner_ref, 'purchase', 'completed',
               x.shopper_id, x.card_number, x.points, x.amount_minor, NULL, x.pricing_version,
               NULL, d.entry_id, NULL, NULL, x.idempotency_key, 0, NULL
        FROM unnest(v_items) x JOIN unnest(v_posted) d ON d.n = x.n
        ORDER BY x.n
        ON CONFLICT (partner_id, partner_ref) DO NOTHING
        RETURNING 1
    )
    SELECT count(*) INTO v_count FROM recorded;
    IF v_count <> cardinality(v_items) THEN
        RAISE EXCEPTION USING ERRCODE = 'CLB01',
            MESSAGE = 'partner_ref_recorded_concurrently';
    END IF;

    INSERT INTO purchase_lines (transaction_id, line_no, shopper_id, partner_id, category,
                                amount_minor)
    SELECT x.transaction_id, l.line_no, x.shopper_id, x.partner_id, l.category, l.amount_minor
    FROM (SELECT t.item, t.category, t.amount_minor,
                 row_number() OVER (PARTITION BY t.item ORDER BY t.k) - 1 AS line_no
          FROM unnest(p_line_items, p_line_categories, p_line_amounts) WITH ORDINALITY
               AS t (item, category, amount_minor, k)) l
    JOIN unnest(v_items) x ON x.n = l.item
    ORDER BY x.n, l.line_no;
    INSERT INTO purchase_breakdown (transaction_id, item_no, shopper_id, kind, points,
                                    campaign_id, paid_by)
    SELECT x.transaction_id, b.item_no, x.shopper_id, b.kind, b.points, b.campaign_id, b.payer
    FROM (SELECT t.item, t.kind, t.points, t.campaign_id, t.payer,
                 row_number() OVER (PARTITION BY t.item ORDER BY t.k) - 1 AS item_no
          FROM unnest(p_breakdown_items, p_item_kinds, p_item_points, p_item_campaign_ids,
                      p_item_payers) WITH ORDINALITY
               AS t (item, kind, points, campaign_id, payer, k)) b
    JOIN unnest(v_items) x ON x.n = b.item
    ORDER BY x.n, b.item_no;

    -- QUALIFICATION_12M for each shopper (each appears once, so it sees its own row above).
    SELECT array_agg(ROW(x.n, x.shopper_id, q.points_earned, q.spend_minor,
                         (SELECT coalesce(max(k), 0)
                          FROM unnest(p_tier_points_min, p_tier_spend_min) WITH ORDINALITY
                               AS r (pm, sm, k)
                          WHERE greatest(q.points_earned, 0) >= r.pm
                             OR greatest(q.spend_minor, 0) >= r.sm),
                         NULL)::partner_purchase_many_tier ORDER BY x.n)
    INTO v_tiers
    FROM unnest(v_items) x
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(CASE WHEN t.kind = 'purchase' THEN t.points ELSE -t.points END),
                        0) AS points_earned,
               coalesce(sum(CASE WHEN t.kind = 'purchase' THEN coalesce(t.amount_minor, 0)
                                 ELSE -coalesce(t.amount_minor, 0) END), 0) AS spend_minor
        FROM partner_transactions t
        LEFT JOIN partner_transactions o ON o.id = t.original_id
        WHERE t.shopper_id IN (SELECT x.shopper_id UNION ALL
                               SELECT s.id FROM shoppers s WHERE s.merged_into_id = x.shopper_id)
          AND t.created_at > p_now - interval '12 months'
          AND (t.kind = 'purchase' OR (t.kind = 'refund' AND o.kind = 'purchase'))
    ) q;

    -- ENSURE_TIER_ROW and TIER_FOR_UPDATE for the shoppers qualifying for an upper tier.
    INSERT INTO shopper_tiers (shopper_id, tier, since, review_at)
    SELECT t.shopper_id, 'member', p_now, p_now + interval '1 year'
    FROM unnest(v_tiers) t WHERE t.qualified > 0 ORDER BY t.shopper_id
    ON CONFLICT (shopper_id) DO NOTHING;
    PERFORM 1 FROM shopper_tiers s
    WHERE s.shopper_id IN (SELECT t.shopper_id FROM unnest(v_tiers) t WHERE t.qualified > 0)
    ORDER BY s.shopper_id FOR UPDATE;
    SELECT array_agg(ROW(t.n, t.shopper_id, t.points_earned, t.spend_minor, t.qualified,
                         s.tier)::partner_purchase_many_tier ORDER BY t.n)
    INTO v_tiers
    FROM unnest(v_tiers) t
    LEFT JOIN shopper_tiers s ON s.shopper_id = t.shopper_id AND t.qualified > 0;

    -- purchase.recorded, unless the tier goes up (the caller records it after tier.changed).
    INSERT INTO event_outbox (event_type, partner_id, shopper_id, payload)
    SELECT 'purchase.recorded', x.partner_id, x.shopper_id, x.payload
    FROM unnest(v_items) x JOIN unnest(v_tiers) t ON t.n = x.n
    WHERE t.qualified <= coalesce(array_position(p_tier_names, t.tier), 0)
    ORDER BY x.n;

    RETURN QUERY
    SELECT i::integer, t.n IS NOT NULL, d.balance_after, t.points_earned, t.spend_minor, t.tier,
           coalesce(t.qualified <= coalesce(array_position(p_tier_names, t.tier), 0), false)
    FROM generate_subscripts(p_transaction_ids, 1) i
    LEFT JOIN unnest(v_tiers) t ON t.n = i
    LEFT JOIN unnest(v_posted) d ON d.n = i
    ORDER BY i;
END $$;
