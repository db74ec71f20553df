-- The event outbox: every event is written in the same transaction as the change it records.
-- A delivery worker (events issue) reads undelivered rows with FOR UPDATE SKIP LOCKED.
CREATE TABLE event_outbox (
    event_id     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_type   text        NOT NULL CHECK (event_type ~ '^[a-z_]+\.[a-z_]+$'),
    partner_id   bigint,     -- the partner whose webhooks receive it; NULL: network-wide
    shopper_id   bigint,
    payload      jsonb       NOT NULL,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz
);
CREATE INDEX event_outbox_undelivered ON event_outbox (event_id) WHERE delivered_at IS NULL;
CREATE INDEX event_outbox_shopper ON event_outbox (shopper_id, event_id) WHERE shopper_id IS NOT NULL;
