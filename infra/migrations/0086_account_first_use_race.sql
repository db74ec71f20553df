-- Two transactions using a new account for the first time at once (e.g. concurrent first earns
-- of one shopper or one partner) could fail one of them with a unique violation on
-- `account_name_key`: 0002's `ON CONFLICT (owner_kind, owner_id, purpose) DO NOTHING` names one
-- arbiter, and the generated `name` column has a second unique index that a concurrent insert
-- can trip first. `name` is a function of (owner_kind, owner_id, purpose), so any conflict is
-- the same account: DO NOTHING without an arbiter covers both indexes. Otherwise unchanged.
CREATE OR REPLACE FUNCTION ledger._account(p_owner_kind text, p_owner_id bigint, p_purpose text)
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
    ON CONFLICT DO NOTHING;
    SELECT * INTO STRICT a FROM ledger.account
    WHERE owner_kind = p_owner_kind AND owner_id = p_owner_id AND purpose = p_purpose;
    RETURN a;
END $$;
