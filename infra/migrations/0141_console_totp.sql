-- The console's TOTP second factor (issue 17): a sealed secret per user, the last time step
-- accepted (so a code is not reusable within its window), a policy per role, and a stage per
-- session (a session past the password only may open the code step or the enrolment page).

-- The secret is AES-GCM sealed with the master key (partners.keybox), the user id bound in.
-- `totp_pending_sealed` is an enrolment not yet confirmed with a valid code.
ALTER TABLE console.users
    ADD COLUMN totp_sealed         bytea,
    ADD COLUMN totp_pending_sealed bytea,
    ADD COLUMN totp_enrolled_at    timestamptz,
    ADD COLUMN totp_last_step      bigint,
    ADD CONSTRAINT users_totp_enrolled CHECK ((totp_sealed IS NULL) = (totp_enrolled_at IS NULL));

-- Off by default: a role without a row (or with required = false) signs in in one step.
CREATE TABLE console.totp_policy (
    role       text        PRIMARY KEY CHECK (role IN ('admin', 'finance', 'support', 'auditor')),
    required   boolean     NOT NULL,
    changed_by text        NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);

-- 'full': signed in. 'totp': the password was right, the code is still due.
-- 'enrol': the password was right, the role requires TOTP and the user has not enrolled.
ALTER TABLE console.sessions
    ADD COLUMN stage text NOT NULL DEFAULT 'full' CHECK (stage IN ('full', 'totp', 'enrol'));
