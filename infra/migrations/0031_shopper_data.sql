-- Shared shopper data that several rooms read and write (issues 6 and 8): the contracts between
-- them live in the schema so that each can be built and tested on its own.

-- Profile facts used by personalization. Personal data is erasable (set to NULL on erasure).
ALTER TABLE shoppers
    ADD COLUMN birth_date date,
    ADD COLUMN erased_at  timestamptz;

-- Consent, one row per shopper; no row means no consent given.
CREATE TABLE shopper_consents (
    shopper_id   bigint      PRIMARY KEY REFERENCES shoppers (id),
    data_sharing boolean     NOT NULL DEFAULT false,  -- cross-partner aggregates and hints
    marketing    boolean     NOT NULL DEFAULT false,  -- offers and campaigns by message
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- Basket lines of a purchase, by category: written with the purchase, read by earn rules,
-- aggregates and segments.
CREATE TABLE purchase_lines (
    transaction_id uuid   NOT NULL REFERENCES partner_transactions (id),
    line_no        smallint NOT NULL CHECK (line_no >= 0),
    shopper_id     bigint NOT NULL,
    partner_id     bigint NOT NULL,
    category       text   NOT NULL CHECK (length(category) BETWEEN 1 AND 64),
    amount_minor   bigint NOT NULL CHECK (amount_minor >= 0),
    PRIMARY KEY (shopper_id, transaction_id, line_no)
);
CREATE INDEX purchase_lines_transaction ON purchase_lines (transaction_id);

-- A shopper's current segments, replaced by the segment refresh worker (issue 8) and read as
-- campaign conditions (issue 6). Segment names are stable identifiers (e.g. 'champions',
-- 'at_risk', 'churn_90', 'birthday_month', 'affinity:grocery').
CREATE TABLE shopper_segments (
    shopper_id   bigint      NOT NULL REFERENCES shoppers (id),
    segment      text        NOT NULL CHECK (segment ~ '^[a-z0-9_]+(:[a-z0-9_-]+)?$'),
    refreshed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shopper_id, segment)
);
CREATE INDEX shopper_segments_segment ON shopper_segments (segment, shopper_id);

-- Net promoter answers from shoppers (0-10), read by operator analytics.
CREATE TABLE nps_answers (
    answer_id   bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shopper_id  bigint      NOT NULL REFERENCES shoppers (id),
    score       smallint    NOT NULL CHECK (score BETWEEN 0 AND 10),
    comment     text        CHECK (length(comment) <= 2000),
    answered_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX nps_answers_time ON nps_answers (answered_at);
