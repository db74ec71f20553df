-- The network's own settings: one row, created with the database.
CREATE TABLE network_settings (
    singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    currency   char(3)     NOT NULL DEFAULT 'EUR' CHECK (currency ~ '^[A-Z]{3}$'),
    time_zone  text        NOT NULL DEFAULT 'UTC',
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO network_settings DEFAULT VALUES;
