-- Program rules (issue 6): partners' earn rules, campaigns with budgets and per-shopper caps,
-- the points breakdown of each purchase, and referrals.

-- Earn rules beside the pricing contract's base rate. No row: no minimum basket.
CREATE TABLE partner_earn_rules (
    partner_id       bigint      PRIMARY KEY REFERENCES partners (id),
    min_basket_minor bigint      NOT NULL DEFAULT 0 CHECK (min_basket_minor >= 0),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    updated_by       text        NOT NULL
);

-- Per category: a multiplier on the base rate (10000 = 1.0x) or an exclusion (earns nothing).
CREATE TABLE partner_earn_categories (
    partner_id     bigint  NOT NULL REFERENCES partners (id),
    category       text    NOT NULL CHECK (length(category) BETWEEN 1 AND 64),
    multiplier_bps integer NOT NULL CHECK (multiplier_bps BETWEEN 0 AND 1000000),
    excluded       boolean NOT NULL DEFAULT false,
    PRIMARY KEY (partner_id, category)
);

-- A campaign: partner-defined (partner_id set, the partner pays at its issue price) or
-- network-wide (partner_id NULL, network:marketing pays). `awarded_points` never passes
-- `budget_points`: the award statement locks the row and grants at most what is left.
CREATE TABLE campaigns (
    id                     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partner_id             bigint      REFERENCES partners (id),
    name                   text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    starts_at              timestamptz NOT NULL,
    ends_at                timestamptz NOT NULL,
    -- conditions (NULL or false: no condition)
    segment                text,
    tier                   text,
    category               text,
    basket_min_minor       bigint      CHECK (basket_min_minor >= 0),
    first_purchase         boolean     NOT NULL DEFAULT false,
    birthday_month         boolean     NOT NULL DEFAULT false,
    days_of_week           smallint[]  CHECK (days_of_week <@ ARRAY[1, 2, 3, 4, 5, 6, 7]::smallint[]),
    -- reward: a multiplier on the eligible base points, or a fixed bonus
    multiplier_bps         integer     CHECK (multiplier_bps > 10000 AND multiplier_bps <= 1000000),
    bonus_points           bigint      CHECK (bonus_points > 0),
    budget_points          bigint      NOT NULL CHECK (budget_points > 0),
    awarded_points         bigint      NOT NULL DEFAULT 0,
    per_shopper_cap_points bigint      NOT NULL CHECK (per_shopper_cap_points > 0),
    ended_at               timestamptz,
    created_at             timestamptz NOT NULL DEFAULT now(),
    created_by             text        NOT NULL,
    CHECK (ends_at > starts_at),
    CHECK ((multiplier_bps IS NULL) <> (bonus_points IS NULL)),
    CHECK (awarded_points BETWEEN 0 AND budget_points)
);
CREATE INDEX campaigns_partner ON campaigns (partner_id, id);
CREATE INDEX campaigns_window ON campaigns (ends_at, starts_at) WHERE ended_at IS NULL;

-- Points a shopper received from a campaign; the row lock serializes one shopper's awards.
CREATE TABLE campaign_shopper_awards (
    shopper_id  bigint NOT NULL REFERENCES shoppers (id),
    campaign_id bigint NOT NULL REFERENCES campaigns (id),
    points      bigint NOT NULL DEFAULT 0 CHECK (points >= 0),
    PRIMARY KEY (shopper_id, campaign_id)
);

-- Grant up to `p_wanted` points of a campaign to a shopper: at most what is left of the
-- shopper's cap and of the budget (a partial award), zero when either is spent. Locks the
-- shopper's award row, then the campaign row; callers award campaigns in ascending id, so
-- concurrent purchases take locks in one global order and never deadlock.
CREATE FUNCTION campaign_award(p_campaign bigint, p_shopper bigint, p_wanted bigint)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_had    bigint;
    v_cap    bigint;
    v_left   bigint;
    v_grant  bigint;
BEGIN
    IF p_wanted <= 0 THEN
        RETURN 0;
    END IF;
    INSERT INTO campaign_shopper_awards (shopper_id, campaign_id) VALUES (p_shopper, p_campaign)
    ON CONFLICT DO NOTHING;
    SELECT points INTO v_had FROM campaign_shopper_awards
    WHERE shopper_id = p_shopper AND campaign_id = p_campaign FOR NO KEY UPDATE;
    -- NO KEY UPDATE, not UPDATE: the award row's foreign key holds KEY SHARE on the campaign,
    -- and FOR UPDATE would wait on every other purchase's KEY SHARE (a deadlock).
    SELECT per_shopper_cap_points, budget_points - awarded_points INTO v_cap, v_left
    FROM campaigns WHERE id = p_campaign FOR NO KEY UPDATE;
    v_grant := greatest(0, least(p_wanted, v_cap - v_had, v_left));
    IF v_grant > 0 THEN
        UPDATE campaigns SET awarded_points = awarded_points + v_grant WHERE id = p_campaign;
        UPDATE campaign_shopper_awards SET points = points + v_grant
        WHERE shopper_id = p_shopper AND campaign_id = p_campaign;
    END IF;
    RETURN v_grant;
END;
$$;

-- The breakdown of a purchase's points, kept for the transaction's history and reports.
CREATE TABLE purchase_breakdown (
    transaction_id uuid    NOT NULL REFERENCES partner_transactions (id),
    item_no        smallint NOT NULL CHECK (item_no >= 0),
    shopper_id     bigint  NOT NULL,
    kind           text    NOT NULL CHECK (kind IN ('base', 'tier_bonus', 'campaign', 'referral')),
    points         bigint  NOT NULL CHECK (points >= 0),
    campaign_id    bigint  REFERENCES campaigns (id),
    paid_by        text    NOT NULL CHECK (paid_by IN ('partner', 'network')),
    PRIMARY KEY (shopper_id, transaction_id, item_no)
);
CREATE INDEX purchase_breakdown_campaign ON purchase_breakdown (campaign_id)
    WHERE campaign_id IS NOT NULL;

-- Referrals. A shopper's code is created on first request and never changes.
CREATE TABLE referral_codes (
    shopper_id bigint      PRIMARY KEY REFERENCES shoppers (id),
    code       text        NOT NULL UNIQUE CHECK (code ~ '^[A-Z0-9]{4,16}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- A shopper is referred at most once (the key); never by themself. Both bonuses are paid once,
-- by the statement that sets rewarded_at from NULL.
CREATE TABLE referrals (
    referred_shopper_id     bigint      PRIMARY KEY REFERENCES shoppers (id),
    referrer_shopper_id     bigint      NOT NULL REFERENCES shoppers (id),
    created_at              timestamptz NOT NULL DEFAULT now(),
    rewarded_at             timestamptz,
    qualifying_transaction_id uuid      REFERENCES partner_transactions (id),
    CHECK (referred_shopper_id <> referrer_shopper_id)
);
CREATE INDEX referrals_referrer ON referrals (referrer_shopper_id);

-- A shopper's purchases by partner: "first purchase at this partner" and the 12-month tier
-- qualification read them on every purchase.
CREATE INDEX partner_transactions_shopper
    ON partner_transactions (shopper_id, partner_id, created_at);
