-- Webhook endpoints, their secrets, one message per (event, endpoint) and one row per attempt
-- (issue 16). The outbox (0030) stays the one source: a trigger queues each event that some
-- enabled endpoint could want, in the event's own transaction, and the fan-out worker turns
-- queued events into messages.
CREATE SCHEMA webhooks;

CREATE TABLE webhooks.endpoint (
    endpoint_id     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    public_id       text        NOT NULL UNIQUE CHECK (public_id ~ '^ep_[a-z0-9]{16,64}$'),
    partner_id      bigint      NOT NULL REFERENCES partners (id),
    url             text        NOT NULL CHECK (length(url) BETWEEN 8 AND 2048),
    description     text        NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    -- the event types this endpoint receives (names from contracts.events.EVENT_TYPES)
    event_types     text[]      NOT NULL CHECK (cardinality(event_types) BETWEEN 1 AND 64),
    enabled         boolean     NOT NULL DEFAULT true,
    disabled_reason text        CHECK (disabled_reason IN ('partner', 'failing', 'gone')),
    -- first failed attempt of the current unbroken run of failures; NULL after any success
    failing_since   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX endpoint_partner ON webhooks.endpoint (partner_id, endpoint_id);
CREATE INDEX endpoint_enabled ON webhooks.endpoint (partner_id) WHERE enabled;

-- Signing secrets, sealed with the network's KeyBox (associated data: the secret's public id).
-- The current secret has expires_at NULL; a rotation stamps the old one now() + 24 h, and
-- both sign until then.
CREATE TABLE webhooks.endpoint_secret (
    secret_id     text        PRIMARY KEY CHECK (secret_id ~ '^whs_[a-z0-9]{16,64}$'),
    endpoint_id   bigint      NOT NULL REFERENCES webhooks.endpoint (endpoint_id) ON DELETE CASCADE,
    secret_sealed bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz
);
CREATE UNIQUE INDEX endpoint_secret_current ON webhooks.endpoint_secret (endpoint_id)
    WHERE expires_at IS NULL;

-- One message per (event, endpoint): at least once, retried on the schedule. A replay or a
-- manual retry puts the same row back to 'pending' (the webhook-id stays the event's).
CREATE TABLE webhooks.message (
    message_id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    public_id       text        NOT NULL UNIQUE CHECK (public_id ~ '^msg_[a-z0-9]{16,64}$'),
    endpoint_id     bigint      NOT NULL REFERENCES webhooks.endpoint (endpoint_id) ON DELETE CASCADE,
    event_id        bigint      NOT NULL REFERENCES event_outbox (event_id),
    state           text        NOT NULL DEFAULT 'pending'
                                CHECK (state IN ('pending', 'sending', 'delivered', 'failed')),
    attempts_made   integer     NOT NULL DEFAULT 0 CHECK (attempts_made >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- a claim's lease: a worker that dies mid-send leaves the row to be claimed again after it
    lease_until     timestamptz,
    -- what the next attempt is recorded as: a manual retry or a replay says so in its attempt
    next_trigger    text        NOT NULL DEFAULT 'scheduled'
                                CHECK (next_trigger IN ('scheduled', 'manual', 'replay')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX message_due ON webhooks.message (next_attempt_at) WHERE state IN ('pending', 'sending');
CREATE INDEX message_endpoint ON webhooks.message (endpoint_id, message_id);

CREATE TABLE webhooks.attempt (
    attempt_id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id      bigint      NOT NULL REFERENCES webhooks.message (message_id) ON DELETE CASCADE,
    attempted_at    timestamptz NOT NULL DEFAULT now(),
    trigger         text        NOT NULL CHECK (trigger IN ('scheduled', 'manual', 'replay')),
    response_status integer,                      -- NULL: no HTTP answer (timeout, refused, SSRF)
    latency_ms      integer     NOT NULL CHECK (latency_ms >= 0),
    error           text        CHECK (length(error) <= 1000),
    response_body   text        CHECK (length(response_body) <= 20000)
);
CREATE INDEX attempt_message ON webhooks.attempt (message_id, attempt_id);

-- Events waiting for the fan-out worker (drained with SKIP LOCKED, rows deleted as done).
CREATE TABLE webhooks.fanout_queue (
    event_id bigint PRIMARY KEY
);

-- Queue only what an enabled endpoint could receive: with no endpoint the hot path pays one
-- index probe. Network-wide events (partner_id NULL: shopper.erased, points.expiring) are fanned
-- out to the partners the worker chooses, so any enabled endpoint queues them.
CREATE FUNCTION webhooks.queue_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM webhooks.endpoint e
        WHERE e.enabled AND (NEW.partner_id IS NULL OR e.partner_id = NEW.partner_id)
    ) THEN
        INSERT INTO webhooks.fanout_queue (event_id) VALUES (NEW.event_id);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER event_outbox_webhooks AFTER INSERT ON event_outbox
    FOR EACH ROW EXECUTE FUNCTION webhooks.queue_event();

-- A shopper's consent per partner (issues 16 and 17): a partner the shopper consented to may be
-- told about the shopper's points (e.g. `points.expiring`). No row: not consented.
CREATE TABLE shopper_partner_consents (
    shopper_id bigint      NOT NULL REFERENCES shoppers (id),
    partner_id bigint      NOT NULL REFERENCES partners (id),
    granted    boolean     NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (shopper_id, partner_id)
);

-- The partners an event is delivered to: the one rule, used by the fan-out and by replay.
-- A partner's own event goes to that partner; a shopper's erasure to every partner that has a
-- transaction of the shopper (they hold copies to delete); points about to expire to the
-- partners the shopper consented to; any other network-wide event to nobody.
CREATE FUNCTION webhooks.event_recipients(p_event_id bigint) RETURNS SETOF bigint
LANGUAGE sql STABLE AS $$
    SELECT o.partner_id FROM event_outbox o
    WHERE o.event_id = p_event_id AND o.partner_id IS NOT NULL
    UNION
    SELECT DISTINCT t.partner_id FROM event_outbox o
    JOIN partner_transactions t ON t.shopper_id = o.shopper_id
    WHERE o.event_id = p_event_id AND o.partner_id IS NULL AND o.event_type = 'shopper.erased'
    UNION
    SELECT c.partner_id FROM event_outbox o
    JOIN shopper_partner_consents c ON c.shopper_id = o.shopper_id AND c.granted
    WHERE o.event_id = p_event_id AND o.partner_id IS NULL AND o.event_type = 'points.expiring'
$$;

CREATE INDEX event_outbox_occurred ON event_outbox (occurred_at, event_id);
