-- The operator console (issue 17): its users, their sessions, failed sign-ins (for the
-- lockout) and the append-only audit log of every operator action taken in it.

CREATE SCHEMA console;

-- Roles are the operator API's (gateway/tokens.Role); a password is an argon2id hash.
CREATE TABLE console.users (
    user_id       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email         text        NOT NULL UNIQUE
                  CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254
                         AND position('@' IN email) > 1),
    role          text        NOT NULL CHECK (role IN ('admin', 'finance', 'support', 'auditor')),
    password_hash text        NOT NULL CHECK (password_hash LIKE '$argon2%'),
    created_by    text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now()
);

-- Only the SHA-256 of a session id is stored: a copy of this table opens no session.
CREATE TABLE console.sessions (
    session_digest bytea       PRIMARY KEY CHECK (length(session_digest) = 32),
    user_id        bigint      NOT NULL REFERENCES console.users (user_id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    CHECK (created_at < expires_at)
);
CREATE INDEX sessions_expires_at ON console.sessions (expires_at);

-- One row per failed sign-in, by the email typed (known or not, so the lockout says nothing
-- about which emails exist). Rows older than the window are deleted at the next sign-in.
CREATE TABLE console.sign_in_failures (
    email     text        NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sign_in_failures_email ON console.sign_in_failures (email, failed_at);

-- Who did what, when, with the object before and after. Append-only: a trigger refuses
-- UPDATE, DELETE and TRUNCATE, whoever asks (the service's own role included).
CREATE TABLE console.audit_log (
    audit_id  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    actor     text        NOT NULL,
    role      text        NOT NULL,
    action    text        NOT NULL,
    subject   text        NOT NULL,
    before    jsonb,
    after     jsonb,
    detail    jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_at ON console.audit_log (at DESC, audit_id DESC);

CREATE FUNCTION console.audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'console.audit_log is append-only';
END
$$;

CREATE TRIGGER audit_log_no_update_delete
    BEFORE UPDATE OR DELETE ON console.audit_log
    FOR EACH ROW EXECUTE FUNCTION console.audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON console.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION console.audit_log_append_only();
