-- Partner tenancy (issue 4): partners, versioned pricing, API keys, and the gateway's shared
-- state for signed calls (nonces, per-key rate windows, idempotency records).
-- Ids are bigint because the ledger's accounts are keyed by bigint owner ids.

CREATE TABLE partners (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug             text        NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name             text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    rate_limit_per_s integer     NOT NULL DEFAULT 100 CHECK (rate_limit_per_s BETWEEN 1 AND 100000),
    created_by       text        NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

-- Pricing is versioned: a change is a new row with an effective time, never an edit.
CREATE TABLE partner_pricing_versions (
    partner_id              bigint      NOT NULL REFERENCES partners (id),
    version                 integer     NOT NULL CHECK (version >= 1),
    effective_at            timestamptz NOT NULL,
    issue_price_micros      bigint      NOT NULL CHECK (issue_price_micros >= 0),
    redemption_price_micros bigint      NOT NULL CHECK (redemption_price_micros >= 0),
    earn_points             bigint      NOT NULL CHECK (earn_points >= 0),
    earn_spend_minor        bigint      NOT NULL CHECK (earn_spend_minor > 0),
    created_by              text        NOT NULL,
    created_at              timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, version),
    UNIQUE (partner_id, effective_at)
);

CREATE FUNCTION partner_pricing_versions_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'partner_pricing_versions is append-only: add a new version';
END
$$;

CREATE TRIGGER partner_pricing_versions_append_only
    BEFORE UPDATE OR DELETE ON partner_pricing_versions
    FOR EACH ROW EXECUTE FUNCTION partner_pricing_versions_append_only();

-- Secrets are sealed with AES-256-GCM under the configured master key; the key id is the
-- associated data, so a sealed secret cannot be moved to another key row.
CREATE TABLE partner_api_keys (
    key_id        text        PRIMARY KEY CHECK (key_id ~ '^pk_[a-z0-9]{16,64}$'),
    partner_id    bigint      NOT NULL REFERENCES partners (id),
    secret_sealed bytea       NOT NULL,
    created_by    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    revoked_by    text
);
CREATE INDEX partner_api_keys_active ON partner_api_keys (partner_id) WHERE revoked_at IS NULL;

-- Nonces seen per key within the acceptance window, shared by every server process.
CREATE TABLE signature_nonces (
    key_id  text        NOT NULL,
    nonce   text        NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (key_id, nonce)
);
CREATE INDEX signature_nonces_seen_at ON signature_nonces (seen_at);

-- Fixed one-second windows per key: one upserted counter row per key and second.
CREATE TABLE rate_limit_windows (
    key_id   text    NOT NULL,
    window_s bigint  NOT NULL,
    requests integer NOT NULL,
    PRIMARY KEY (key_id, window_s)
);

-- Stored responses of mutating partner calls, written in the effect's transaction.
CREATE TABLE idempotency_records (
    partner_id      bigint      NOT NULL REFERENCES partners (id),
    idempotency_key text        NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_sha256  bytea       NOT NULL,
    response_status smallint    NOT NULL,
    response_body   bytea       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partner_id, idempotency_key)
);
