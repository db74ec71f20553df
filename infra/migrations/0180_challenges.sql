-- Challenges and badges (issue 19). A challenge is defined by the operator (partner_id NULL:
-- network:marketing funds it) or by a partner for its own store (partner_id: that partner
-- funds it, at its issue price). `awarded_points` is the budget in use: it never passes
-- `budget_points` (the award statement adds only when the reward still fits), and a claw-back
-- gives the reward back.
CREATE TABLE challenges (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partner_id     bigint      REFERENCES partners (id),
    name           text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind           text        NOT NULL
        CHECK (kind IN ('distinct_partners', 'purchases_within', 'first_at_new_partner')),
    goal           integer     NOT NULL CHECK (goal BETWEEN 1 AND 100),
    window_weeks   integer     CHECK (window_weeks BETWEEN 1 AND 52),
    reward_points  bigint      NOT NULL CHECK (reward_points > 0),
    budget_points  bigint      NOT NULL CHECK (budget_points > 0),
    awarded_points bigint      NOT NULL DEFAULT 0,
    starts_at      timestamptz NOT NULL,
    ends_at        timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text        NOT NULL,
    CHECK (ends_at > starts_at),
    CHECK (awarded_points BETWEEN 0 AND budget_points),
    CHECK ((kind = 'purchases_within') = (window_weeks IS NOT NULL)),
    CHECK (kind <> 'first_at_new_partner' OR goal = 1),
    CHECK (kind <> 'distinct_partners' OR partner_id IS NULL)
);
CREATE INDEX challenges_partner ON challenges (partner_id, id);
CREATE INDEX challenges_window ON challenges (ends_at, starts_at);

-- A shopper's progress in a challenge; its row lock serializes everything about the pair
-- (the worker takes it before reading purchases and before the award row and the challenge).
CREATE TABLE challenge_progress (
    shopper_id         bigint      NOT NULL REFERENCES shoppers (id),
    challenge_id       bigint      NOT NULL REFERENCES challenges (id),
    progress           integer     NOT NULL DEFAULT 0 CHECK (progress >= 0),
    leaderboard_opt_in boolean     NOT NULL DEFAULT false,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shopper_id, challenge_id)
);
CREATE INDEX challenge_progress_board ON challenge_progress (challenge_id, progress DESC)
    WHERE leaderboard_opt_in;
-- Who reached a challenge's goal (the waiting list when a claw-back returns budget).
CREATE INDEX challenge_progress_reached ON challenge_progress (challenge_id, progress, updated_at);

-- The award, and with it the badge: one row per (challenge, shopper), the exactly-once
-- guarantee. A claw-back marks it revoked (the badge shows as revoked); reaching the goal
-- again re-grants it under a new `grants` number, so each grant has its own ledger keys.
CREATE TABLE challenge_awards (
    shopper_id      bigint      NOT NULL REFERENCES shoppers (id),
    challenge_id    bigint      NOT NULL REFERENCES challenges (id),
    state           text        NOT NULL CHECK (state IN ('active', 'revoked')),
    grants          integer     NOT NULL CHECK (grants >= 1),
    points          bigint      NOT NULL CHECK (points > 0),
    entry_id        bigint      NOT NULL,  -- the goodwill entry of the current grant
    revoke_entry_id bigint,                -- the refund_earn entry of the claw-back
    awarded_at      timestamptz NOT NULL,
    revoked_at      timestamptz,
    PRIMARY KEY (shopper_id, challenge_id),
    CHECK ((state = 'revoked') = (revoked_at IS NOT NULL))
);
CREATE INDEX challenge_awards_challenge ON challenge_awards (challenge_id);

-- Purchase and refund events the challenge worker has yet to fold (and `challenge.budget_freed`,
-- which names a shopper who reached a goal while its budget was spent), queued by a trigger in the
-- event's own transaction (a queue, never a watermark on event_id: ids are not commit order).
-- Only while some challenge may care: one index probe when none does.
CREATE TABLE challenge_queue (
    event_id     bigint      PRIMARY KEY,
    shopper_id   bigint      NOT NULL,
    occurred_at  timestamptz NOT NULL,
    leased_until timestamptz
);
CREATE INDEX challenge_queue_shopper ON challenge_queue (shopper_id);

-- How long after a challenge ends a refund can still take its award back.
CREATE FUNCTION challenge_clawback_days() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 90 $$;

CREATE FUNCTION challenge_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM challenges
               WHERE ends_at > now() - make_interval(days => challenge_clawback_days())
                 AND starts_at <= now()) THEN
        INSERT INTO challenge_queue (event_id, shopper_id, occurred_at)
        VALUES (NEW.event_id, NEW.shopper_id, NEW.occurred_at)
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER event_outbox_challenges AFTER INSERT ON event_outbox
    FOR EACH ROW
    WHEN (NEW.shopper_id IS NOT NULL AND NEW.event_type IN
          ('purchase.recorded', 'purchase.created', 'purchase.refunded',
           'challenge.budget_freed'))
    EXECUTE FUNCTION challenge_enqueue();
