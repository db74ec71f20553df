-- The outcome of each `coalition verify`, so the service can export the last one as metrics
-- (coalition_verify_last_problems, coalition_verify_last_run_timestamp_seconds) and an alert
-- can fire when verify fails or has not run. Append-only; one row per run.
CREATE TABLE ops_verify_run (
    run_id      bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    finished_at timestamptz NOT NULL DEFAULT now(),
    problems    integer     NOT NULL CHECK (problems >= 0),
    detail      text[]      NOT NULL DEFAULT '{}'
);
