-- Shoppers and their cards (issue 4). A card number belongs to one shopper network-wide.

CREATE TABLE shoppers (
    id                     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    enrolled_by_partner_id bigint      NOT NULL REFERENCES partners (id),
    created_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shopper_cards (
    card_number text        PRIMARY KEY CHECK (card_number ~ '^[0-9]{12,19}$'),
    shopper_id  bigint      NOT NULL REFERENCES shoppers (id),
    issued_by   text        NOT NULL CHECK (issued_by IN ('network', 'partner')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shopper_cards_shopper ON shopper_cards (shopper_id);
