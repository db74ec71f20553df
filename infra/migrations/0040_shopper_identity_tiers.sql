-- Shopper identity, tiers and expiry notices (issue 6, shopper half).

-- Points lifetime: a network setting the purchase path reads at each earn.
ALTER TABLE network_settings
    ADD COLUMN points_lifetime_months integer NOT NULL DEFAULT 24
        CHECK (points_lifetime_months BETWEEN 1 AND 120);

-- A shopper absorbed by a merge points at the survivor; its ledger wallet is emptied by
-- ledger.transfer_all and its identifiers move to the survivor.
ALTER TABLE shoppers
    ADD COLUMN merged_into_id bigint REFERENCES shoppers (id),
    ADD CONSTRAINT shoppers_not_merged_into_self CHECK (merged_into_id <> id);
CREATE INDEX shoppers_merged_into ON shoppers (merged_into_id) WHERE merged_into_id IS NOT NULL;

-- Card states: a blocked card is refused at every operation; a replaced card is blocked for
-- good and names its successor. Cards are never deleted: partner_transactions name them.
ALTER TABLE shopper_cards
    ADD COLUMN status        text        NOT NULL DEFAULT 'active'
        CHECK (status IN ('active', 'blocked', 'replaced')),
    ADD COLUMN status_reason text        CHECK (length(status_reason) <= 200),
    ADD COLUMN replaced_by   text        REFERENCES shopper_cards (card_number),
    ADD COLUMN status_at     timestamptz,
    ADD CONSTRAINT shopper_cards_replaced_names_successor
        CHECK ((status = 'replaced') = (replaced_by IS NOT NULL));

-- Other identifiers: a phone number as HMAC-SHA256 under a key derived from the master key
-- (never the number itself), and app QR tokens (stored as their SHA-256).
CREATE TABLE shopper_identifiers (
    kind        text        NOT NULL CHECK (kind IN ('phone', 'qr')),
    digest      bytea       NOT NULL CHECK (length(digest) = 32),
    shopper_id  bigint      NOT NULL REFERENCES shoppers (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, digest)
);
CREATE INDEX shopper_identifiers_shopper ON shopper_identifiers (shopper_id);

-- The current tier of a shopper; no row means 'member'. `review_at` is the yearly review:
-- the only moment a tier may go down (one level per review).
CREATE TABLE shopper_tiers (
    shopper_id bigint      PRIMARY KEY REFERENCES shoppers (id),
    tier       text        NOT NULL CHECK (tier IN ('member', 'silver', 'gold')),
    since      timestamptz NOT NULL,
    review_at  timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shopper_tiers_review ON shopper_tiers (review_at) WHERE tier <> 'member';

-- Exactly one points.expiring notice per lot: keyed by the root lot (the earn's), so a lot that
-- a merge moved to another shopper is not noticed again.
CREATE TABLE lot_expiry_notices (
    root_lot_id bigint      PRIMARY KEY,
    shopper_id  bigint      NOT NULL,
    lot_id      bigint      NOT NULL,
    expires_at  timestamptz NOT NULL,
    event_id    bigint,
    noticed_at  timestamptz NOT NULL DEFAULT now()
);
