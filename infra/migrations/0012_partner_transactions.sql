-- The partner-facing view of operations (issue 4): what a partner lists and reconciles by its
-- own reference. The money and points live in the ledger; `ledger_entry_id` and
-- `ledger_hold_id` point there.

CREATE TABLE partner_transactions (
    id                      uuid        PRIMARY KEY,
    partner_id              bigint      NOT NULL REFERENCES partners (id),
    partner_ref             text        NOT NULL CHECK (length(partner_ref) BETWEEN 1 AND 64),
    kind                    text        NOT NULL CHECK (kind IN ('purchase', 'redemption', 'hold', 'refund')),
    status                  text        NOT NULL CHECK (status IN ('completed', 'open', 'captured', 'voided')),
    shopper_id              bigint      NOT NULL REFERENCES shoppers (id),
    card_number             text        NOT NULL,
    points                  bigint      NOT NULL CHECK (points >= 0),
    points_captured         bigint      NOT NULL DEFAULT 0 CHECK (points_captured >= 0),
    amount_minor            bigint      CHECK (amount_minor >= 0),
    value_minor             bigint      CHECK (value_minor >= 0),
    pricing_version         integer     NOT NULL,
    original_id             uuid        REFERENCES partner_transactions (id),
    ledger_entry_id         bigint,     -- the earn, burn, capture or refund entry
    ledger_hold_id          bigint,
    expires_at              timestamptz,
    idempotency_key         text        NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    UNIQUE (partner_id, partner_ref)
);
CREATE INDEX partner_transactions_newest ON partner_transactions (partner_id, created_at DESC, id DESC);
CREATE INDEX partner_transactions_original ON partner_transactions (original_id) WHERE original_id IS NOT NULL;
