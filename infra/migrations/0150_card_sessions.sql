-- The shopper card page (/card): browser sessions, the sign-in links already spent, and the
-- one-time codes sent by email. Only digests are stored: a copy of this table signs no one in.

-- A session: the SHA-256 of the random id held in the shopper's cookie. Ended by sign-out or
-- erasure; refused once past expires_at. Personal data: none (an id and times).
CREATE TABLE card_sessions (
    session_hash bytea       PRIMARY KEY CHECK (length(session_hash) = 32),
    shopper_id   bigint      NOT NULL REFERENCES shoppers (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    ended_at     timestamptz,
    CHECK (expires_at > created_at)
);
CREATE INDEX card_sessions_shopper ON card_sessions (shopper_id);
CREATE INDEX card_sessions_expiry ON card_sessions (expires_at);

-- A shopper token (its `jti`) exchanged for a session: a second exchange finds the row and is
-- refused. Kept until the token itself has expired, then it could not verify anyway.
CREATE TABLE card_spent_tokens (
    token_id   text        PRIMARY KEY CHECK (length(token_id) BETWEEN 1 AND 200),
    spent_at   timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX card_spent_tokens_expiry ON card_spent_tokens (expires_at);

-- A one-time code sent by email: keyed HMACs of the address and of the six digits (a plain
-- digest of six digits is reversed by trying a million), at most a few tries, 10 minutes.
CREATE TABLE card_sign_in_codes (
    code_id    bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email_hash bytea       NOT NULL CHECK (length(email_hash) = 32),
    shopper_id bigint      NOT NULL REFERENCES shoppers (id),
    code_hash  bytea       NOT NULL CHECK (length(code_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    tries      integer     NOT NULL DEFAULT 0 CHECK (tries >= 0),
    used_at    timestamptz,
    CHECK (expires_at > created_at)
);
CREATE INDEX card_sign_in_codes_email ON card_sign_in_codes (email_hash, created_at DESC);
CREATE INDEX card_sign_in_codes_shopper ON card_sign_in_codes (shopper_id);
