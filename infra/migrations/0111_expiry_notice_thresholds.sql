-- Expiry notices at several distances (issue 16: 30 and 7 days before by default): one notice
-- per lot and threshold. Existing notices were the 30-day ones.
ALTER TABLE lot_expiry_notices
    ADD COLUMN days_before integer NOT NULL DEFAULT 30 CHECK (days_before BETWEEN 1 AND 366);
ALTER TABLE lot_expiry_notices DROP CONSTRAINT lot_expiry_notices_pkey;
ALTER TABLE lot_expiry_notices ADD PRIMARY KEY (root_lot_id, days_before);
