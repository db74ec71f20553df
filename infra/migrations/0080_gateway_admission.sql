-- Issue 7, the gateway side of the hot path: a signed partner call is admitted (nonce, rate
-- limit, idempotency claim) by ONE statement inside the transaction of its effect, so a call
-- costs one pool checkout and one commit instead of two checkouts and three commits.

-- The per-key rate-limit counter, one row per (key, window, server process, backend). A backend
-- runs one transaction at a time, so no two open transactions ever update the same row: the
-- counter can live inside the effect's transaction without serializing a hot partner's calls
-- on one row lock. A server process counts its own calls in memory (exact, in-flight ones
-- included) and adds the committed counts of the other processes' rows: so the limit is exact
-- within one process, and across processes it can be exceeded by at most the calls other
-- processes have in flight (uncommitted) at that moment.
-- rate_limit_windows (0010) is no longer written; it is left in place (applied migrations are
-- never edited) and can be dropped once no older server process runs.
CREATE TABLE rate_limit_shards (
    key_id   text    NOT NULL,
    window_s bigint  NOT NULL,
    process  bigint  NOT NULL,
    shard    integer NOT NULL,
    requests integer NOT NULL CHECK (requests > 0),
    PRIMARY KEY (key_id, window_s, process, shard)
);
CREATE INDEX rate_limit_shards_window ON rate_limit_shards (window_s);

-- Admit one signed call; one round trip, constant text, so asyncpg prepares it once.
--   p_key_id NULL: no admission (the call was admitted already), only the idempotency claim.
--   p_idempotency_key NULL: no idempotency claim (reads).
-- nonce_fresh false: the nonce was seen before for this key (nothing else was done).
-- requests: the key's calls in this window so far, this one included: p_local_requests (the
--   calling process's own count, in-flight calls included) plus the committed counts of every
--   other process. Refused above p_limit_per_s (a refused call still counts, as before). The
--   idempotency claim is only made for an admitted call.
-- locked false: another call with this Idempotency-Key holds the claim (answer 409).
-- request_sha256 / response_*: the stored answer of an earlier call with this key, if any.
CREATE FUNCTION gateway_admit(
    p_key_id text,
    p_nonce text,
    p_limit_per_s integer,
    p_window_s bigint,
    p_process bigint,
    p_local_requests integer,
    p_partner_id bigint,
    p_idempotency_key text,
    OUT nonce_fresh boolean,
    OUT requests integer,
    OUT locked boolean,
    OUT request_sha256 bytea,
    OUT response_status smallint,
    OUT response_body bytea
) LANGUAGE plpgsql AS $$
DECLARE
    v_shard integer := pg_backend_pid();
    v_own integer;
BEGIN
    nonce_fresh := true;
    IF p_key_id IS NOT NULL THEN
        INSERT INTO signature_nonces (key_id, nonce) VALUES (p_key_id, p_nonce)
        ON CONFLICT (key_id, nonce) DO NOTHING;
        nonce_fresh := FOUND;
        IF NOT nonce_fresh THEN
            RETURN;
        END IF;
        INSERT INTO rate_limit_shards AS s (key_id, window_s, process, shard, requests)
        VALUES (p_key_id, p_window_s, p_process, v_shard, 1)
        ON CONFLICT (key_id, window_s, process, shard) DO UPDATE SET requests = s.requests + 1
        RETURNING s.requests INTO v_own;
        IF v_own = 1 THEN  -- this backend's first call of the window clears its own past rows
            DELETE FROM rate_limit_shards
            WHERE key_id = p_key_id AND process = p_process AND shard = v_shard
              AND window_s < p_window_s;
        END IF;
        SELECT p_local_requests + coalesce(sum(r.requests), 0)::integer INTO requests
        FROM rate_limit_shards r
        WHERE r.key_id = p_key_id AND r.window_s = p_window_s AND r.process <> p_process;
        IF requests > p_limit_per_s THEN
            RETURN;
        END IF;
    END IF;
    IF p_idempotency_key IS NULL THEN
        locked := true;
        RETURN;
    END IF;
    -- The same lock key as before 0080, so old and new processes exclude each other.
    locked := pg_try_advisory_xact_lock(
        hashtextextended(p_partner_id::text || ':' || p_idempotency_key, 0));
    IF NOT locked THEN
        RETURN;
    END IF;
    SELECT i.request_sha256, i.response_status, i.response_body
    INTO request_sha256, response_status, response_body
    FROM idempotency_records i
    WHERE i.partner_id = p_partner_id AND i.idempotency_key = p_idempotency_key;
END
$$;
