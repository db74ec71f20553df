-- Email to shoppers and partner finance contacts (issue 16): addresses and languages, the
-- queue the outbox feeds, the sent-once ledger and the record of one-click unsubscribes.
CREATE SCHEMA mail;

-- A shopper's address and language: personal data, deleted by erasure. No row: no email,
-- English. Addresses are checked by shoppers/mail/contacts.py; the CHECKs are a backstop.
CREATE TABLE shopper_contacts (
    shopper_id bigint      PRIMARY KEY REFERENCES shoppers (id),
    email      text        CHECK (length(email) BETWEEN 3 AND 254 AND email LIKE '%_@_%'),
    locale     text        NOT NULL DEFAULT 'en' CHECK (locale IN ('en', 'ru')),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A partner's finance contact, who receives `statement.ready` (set by operators).
CREATE TABLE partner_finance_contacts (
    partner_id bigint      PRIMARY KEY REFERENCES partners (id),
    email      text        NOT NULL CHECK (length(email) BETWEEN 3 AND 254 AND email LIKE '%_@_%'),
    locale     text        NOT NULL DEFAULT 'en' CHECK (locale IN ('en', 'ru')),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text        NOT NULL CHECK (length(updated_by) BETWEEN 1 AND 200)
);

-- Events that may become email, queued in the event's own transaction and drained with
-- SKIP LOCKED (a row is deleted in the transaction that claims its deliveries). The trigger's
-- WHEN keeps every other event type (purchases, redemptions) free of any cost here.
CREATE TABLE mail.queue (
    event_id bigint PRIMARY KEY
);

CREATE FUNCTION mail.queue_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO mail.queue (event_id) VALUES (NEW.event_id);
    RETURN NULL;
END $$;

CREATE TRIGGER event_outbox_mail AFTER INSERT ON event_outbox
    FOR EACH ROW
    WHEN (NEW.event_type IN ('points.expiring', 'tier.changed', 'referral.rewarded',
                             'statement.ready'))
    EXECUTE FUNCTION mail.queue_event();

-- The sent-once ledger: one row per (recipient, reason, subject), claimed in the transaction
-- that decides to send, marked sent after the SMTP server accepted it. A row left 'claimed'
-- by a worker that died is sent again once its lease has passed (same Message-ID). Only ids:
-- no address and no content is kept.
CREATE TABLE mail.delivery (
    delivery_id    bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recipient_kind text        NOT NULL CHECK (recipient_kind IN ('shopper', 'partner')),
    recipient_id   bigint      NOT NULL,
    reason         text        NOT NULL CHECK (reason IN ('points_expiring', 'tier_changed',
                                   'referral_rewarded', 'statement_ready', 'sign_in_code')),
    -- the lot and notice, the period, the statement, the referral or the code's request
    subject_key    text        NOT NULL CHECK (length(subject_key) BETWEEN 1 AND 200),
    event_id       bigint      REFERENCES event_outbox (event_id),  -- NULL: a sign-in code
    message_id     text        NOT NULL UNIQUE CHECK (length(message_id) <= 250),
    state          text        NOT NULL DEFAULT 'claimed'
                               CHECK (state IN ('claimed', 'sent', 'failed', 'dropped')),
    attempts       integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    lease_until    timestamptz NOT NULL,
    claimed_at     timestamptz NOT NULL DEFAULT now(),
    sent_at        timestamptz,
    last_error     text        CHECK (length(last_error) <= 500),
    UNIQUE (recipient_kind, recipient_id, reason, subject_key)
);
CREATE INDEX delivery_due ON mail.delivery (lease_until)
    WHERE state = 'claimed' AND event_id IS NOT NULL;
CREATE INDEX delivery_recipient ON mail.delivery (recipient_kind, recipient_id);

-- One-click unsubscribes (RFC 8058): each also withdraws shopper_consents.marketing.
CREATE TABLE mail.unsubscribe (
    unsubscribe_id  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    shopper_id      bigint      NOT NULL REFERENCES shoppers (id),
    unsubscribed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX unsubscribe_shopper ON mail.unsubscribe (shopper_id);
