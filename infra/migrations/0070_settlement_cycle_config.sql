-- Settlement cycle configuration by the operator (issue 5): the cycle gets its own time zone
-- (NULL: follow network_settings.time_zone, the default "midnight in the network's time zone")
-- and every change is kept in an append-only history. A change never re-cuts a closed period:
-- ledger/settlement.py computes the next boundary from the last closed period_end under the
-- configuration in force when the close runs, and changes serialize with closes on the close lock.

ALTER TABLE settlement.cycle
    ADD COLUMN time_zone  text CHECK (time_zone IS NULL OR length(time_zone) BETWEEN 1 AND 64),
    ADD COLUMN updated_by text;

CREATE TABLE settlement.cycle_change (
    change_id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cadence              text        NOT NULL CHECK (cadence IN ('daily', 'weekly', 'monthly')),
    time_zone            text        NOT NULL CHECK (length(time_zone) BETWEEN 1 AND 64),
    previous_cadence     text        NOT NULL,
    previous_time_zone   text        NOT NULL,
    -- The last closed period_end when the change was made: the next period starts there.
    effective_from       timestamptz,
    changed_by           text        NOT NULL,
    changed_at           timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER cycle_change_append_only BEFORE UPDATE OR DELETE ON settlement.cycle_change
    FOR EACH ROW EXECUTE FUNCTION settlement._refuse_change();
