-- Points lifetime changes by the operator (issue 6): who changed the lifetime, when, from what
-- to what. The lifetime itself stays in network_settings.points_lifetime_months; it applies to
-- points earned after the change (lots already issued keep their expiry). Append-only.

CREATE TABLE points_lifetime_change (
    change_id        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    months           integer     NOT NULL CHECK (months BETWEEN 1 AND 120),
    previous_months  integer     NOT NULL,
    changed_by       text        NOT NULL CHECK (length(changed_by) BETWEEN 1 AND 200),
    changed_at       timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION points_lifetime_change_refuse() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'points_lifetime_change is append-only' USING ERRCODE = 'CL002';
END $$;
CREATE TRIGGER points_lifetime_change_append_only BEFORE UPDATE OR DELETE
    ON points_lifetime_change FOR EACH ROW EXECUTE FUNCTION points_lifetime_change_refuse();
