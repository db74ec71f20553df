-- Issue 7: a group commit's calls admitted set-based. gateway_admit (0080) once per call
-- through a LATERAL join cost about 60 µs of server time per call, most of it the executor
-- start-up of its five statements. This function admits many calls (arrays: gateway_admit's
-- arguments, one element per call) in a few statements and answers one row per call, in array
-- order, with gateway_admit's columns and meanings:
--   * nonces: inserted in array order; a call is fresh when its (key, nonce) was not seen
--     before, by an earlier call of the same array either (only its first use is fresh);
--   * rate limit: each fresh call counted on this backend's shard row of its (key, window,
--     process), one upsert per row for all its calls; a shard row created now clears the same
--     (key, process, shard)'s rows of earlier windows (as gateway_admit's first call of a
--     window does: the same rows when the calls' windows do not go back in array order, which
--     a group's queue order gives; otherwise a past window's row may go a little earlier);
--     `requests` = the call's own p_local_requests + the other processes' committed counts;
--     refused above its limit (a refused call still counts);
--   * idempotency claim, for the fresh, admitted calls that name a key: the advisory try-lock
--     of gateway_admit (same lock key) and the stored answer, if any.
-- All the calls come from one server process (one `process` value), as a group's do; a call
-- with a NULL key id is not admitted again (nonce_fresh true, requests NULL), only claimed. tests/integration/test_gateway_admit_many.py compares it with gateway_admit.
CREATE FUNCTION gateway_admit_many(
    p_key_ids text[],
    p_nonces text[],
    p_limits_per_s integer[],
    p_windows_s bigint[],
    p_processes bigint[],
    p_local_requests integer[],
    p_partner_ids bigint[],
    p_idempotency_keys text[]
) RETURNS TABLE (n integer, nonce_fresh boolean, requests integer, locked boolean,
                 request_sha256 bytea, response_status smallint, response_body bytea)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_shard integer := pg_backend_pid();
    v_fresh integer[];
    v_created_keys text[];
    v_created_windows bigint[];
    v_created_processes bigint[];
BEGIN
    IF (SELECT count(DISTINCT p) FROM unnest(p_processes) p) > 1 THEN
        -- One server process's group: its calls' own counts are that process's, and the other
        -- processes' committed rows are read after this array's rows are counted.
        RAISE EXCEPTION 'gateway_admit_many: calls of one server process only';
    END IF;
    -- The nonces; the first call of each new (key, nonce) is fresh.
    WITH inserted AS (
        INSERT INTO signature_nonces (key_id, nonce)
        SELECT c.key_id, c.nonce
        FROM unnest(p_key_ids, p_nonces) WITH ORDINALITY AS c (key_id, nonce, n)
        WHERE c.key_id IS NOT NULL
        ORDER BY c.n
        ON CONFLICT (key_id, nonce) DO NOTHING
        RETURNING key_id, nonce
    )
    SELECT array_agg(first_n) INTO v_fresh
    FROM (SELECT min(c.n)::integer AS first_n
          FROM unnest(p_key_ids, p_nonces) WITH ORDINALITY AS c (key_id, nonce, n)
          JOIN inserted i ON i.key_id = c.key_id AND i.nonce = c.nonce
          GROUP BY c.key_id, c.nonce) f;

    -- This backend's shard rows, one upsert per (key, window, process); then the rows of
    -- earlier windows of each row created now (a statement of its own: it must see them).
    WITH counted AS (
        INSERT INTO rate_limit_shards AS s (key_id, window_s, process, shard, requests)
        SELECT c.key_id, c.window_s, c.process, v_shard, count(*)::integer
        FROM unnest(p_key_ids, p_windows_s, p_processes) WITH ORDINALITY
             AS c (key_id, window_s, process, n)
        WHERE c.n = ANY (v_fresh)
        GROUP BY c.key_id, c.window_s, c.process
        ORDER BY c.key_id, c.window_s, c.process
        ON CONFLICT (key_id, window_s, process, shard)
        DO UPDATE SET requests = s.requests + EXCLUDED.requests
        RETURNING s.key_id, s.window_s, s.process, (s.xmax::text = '0') AS created
    )
    SELECT array_agg(k.key_id), array_agg(k.window_s), array_agg(k.process)
    INTO v_created_keys, v_created_windows, v_created_processes
    FROM counted k WHERE k.created;
    IF v_created_keys IS NOT NULL THEN
        DELETE FROM rate_limit_shards r
        USING unnest(v_created_keys, v_created_windows, v_created_processes)
              AS k (key_id, window_s, process)
        WHERE r.key_id = k.key_id AND r.process = k.process AND r.shard = v_shard
          AND r.window_s < k.window_s;
    END IF;

    RETURN QUERY
    WITH c AS MATERIALIZED (
        SELECT u.n::integer AS n, u.key_id, u.limit_per_s, u.window_s, u.process,
               u.local_requests, u.partner_id, u.idempotency_key,
               (u.key_id IS NULL OR coalesce(u.n = ANY (v_fresh), false)) AS fresh
        FROM unnest(p_key_ids, p_limits_per_s, p_windows_s, p_processes, p_local_requests,
                    p_partner_ids, p_idempotency_keys) WITH ORDINALITY
             AS u (key_id, limit_per_s, window_s, process, local_requests, partner_id,
                   idempotency_key, n)
    ), judged AS MATERIALIZED (
        SELECT c.*,
               CASE WHEN c.key_id IS NOT NULL AND c.fresh THEN
                   c.local_requests + (SELECT coalesce(sum(r.requests), 0)::integer
                                       FROM rate_limit_shards r
                                       WHERE r.key_id = c.key_id AND r.window_s = c.window_s
                                         AND r.process <> c.process)
               END AS requests
        FROM c
    ), claimed AS MATERIALIZED (
        SELECT j.*,
               CASE WHEN NOT j.fresh OR j.requests > j.limit_per_s THEN NULL
                    WHEN j.idempotency_key IS NULL THEN true
                    ELSE pg_try_advisory_xact_lock(
                        hashtextextended(j.partner_id::text || ':' || j.idempotency_key, 0))
               END AS locked
        FROM judged j
        ORDER BY j.n
    )
    SELECT k.n, k.fresh, k.requests, k.locked, i.request_sha256, i.response_status,
           i.response_body
    FROM claimed k
    LEFT JOIN idempotency_records i
           ON k.locked AND k.idempotency_key IS NOT NULL
          AND i.partner_id = k.partner_id AND i.idempotency_key = k.idempotency_key
    ORDER BY k.n;
END $$;
