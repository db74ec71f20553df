-- Webhook delivery (issue 16): the claim's index and the one function that records an attempt.

-- A claim looks at each enabled endpoint's due messages, oldest first, and counts the ones it
-- has in flight (state 'sending' with a live lease): both read this index, never a delivered
-- row.
CREATE INDEX message_endpoint_due ON webhooks.message (endpoint_id, next_attempt_at, message_id)
    WHERE state IN ('pending', 'sending');

-- Record one attempt of a claimed message and what it means, in one transaction:
--  * the attempt row (what happened, whether or not the claim was still ours);
--  * the message's next state, only while the claim is still ours (its lease_until is the
--    claim's token: a worker whose lease expired and was claimed again changes nothing);
--  * the endpoint's failing_since: cleared by a success, set by the first failure of a run;
--  * disabling the endpoint, on a 410 Gone ('gone') or a failure while it has been failing for
--    longer than p_failing_limit_s ('failing'), with the operator's outbox event
--    `webhook_endpoint.disabled` (internal: never published; no URL, which may hold a token).
--    Each UPDATE re-checks its WHERE on the row's latest version, so two concurrent failures
--    disable once and record one event.
CREATE FUNCTION webhooks.record_attempt(
    p_message_id bigint,
    p_lease_until timestamptz,
    p_endpoint_id bigint,
    p_trigger text,
    p_response_status integer,
    p_latency_ms integer,
    p_error text,
    p_response_body text,
    p_state text,
    p_retry_in_s double precision,
    p_gone boolean,
    p_failing_limit_s double precision
) RETURNS TABLE (recorded boolean, disabled_reason text, partner_id bigint, endpoint_public_id text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_recorded boolean;
    v_endpoint webhooks.endpoint;
BEGIN
    ASSERT p_state IN ('pending', 'delivered', 'failed'), p_state;
    INSERT INTO webhooks.attempt
        (message_id, trigger, response_status, latency_ms, error, response_body)
    VALUES (p_message_id, p_trigger, p_response_status, p_latency_ms, p_error, p_response_body);

    UPDATE webhooks.message m
    SET state = p_state,
        attempts_made = m.attempts_made + 1,
        next_attempt_at = CASE WHEN p_state = 'pending'
                               THEN now() + make_interval(secs => p_retry_in_s)
                               ELSE m.next_attempt_at END,
        lease_until = NULL,
        next_trigger = 'scheduled',
        delivered_at = CASE WHEN p_state = 'delivered' THEN now() ELSE m.delivered_at END
    WHERE m.message_id = p_message_id AND m.state = 'sending' AND m.lease_until = p_lease_until;
    v_recorded := FOUND;

    IF p_state = 'delivered' THEN
        UPDATE webhooks.endpoint e SET failing_since = NULL
        WHERE e.endpoint_id = p_endpoint_id AND e.failing_since IS NOT NULL;
    ELSE
        UPDATE webhooks.endpoint e SET failing_since = now()
        WHERE e.endpoint_id = p_endpoint_id AND e.failing_since IS NULL;
        UPDATE webhooks.endpoint e
        SET enabled = false,
            disabled_reason = CASE WHEN p_gone THEN 'gone' ELSE 'failing' END,
            updated_at = now()
        WHERE e.endpoint_id = p_endpoint_id AND e.enabled
          AND (p_gone OR e.failing_since < now() - make_interval(secs => p_failing_limit_s))
        RETURNING * INTO v_endpoint;
        IF FOUND THEN
            INSERT INTO event_outbox (event_type, partner_id, shopper_id, payload)
            VALUES ('webhook_endpoint.disabled', v_endpoint.partner_id, NULL, jsonb_build_object(
                'endpoint_id', v_endpoint.public_id,
                'reason', v_endpoint.disabled_reason,
                'failing_since', v_endpoint.failing_since,
                'response_status', p_response_status));
            RETURN QUERY SELECT v_recorded, v_endpoint.disabled_reason, v_endpoint.partner_id,
                                v_endpoint.public_id;
            RETURN;
        END IF;
    END IF;
    RETURN QUERY SELECT v_recorded, NULL::text, NULL::bigint, NULL::text;
END $$;

-- Claim due messages fairly and lease them: at most p_limit in all and, per enabled endpoint
-- with due work, at most (p_per_endpoint - its messages in flight) of its oldest due messages;
-- every endpoint's first pick comes before anyone's second (row_number per endpoint), so one
-- endpoint's backlog never crowds out another. A message is due when pending and its time has
-- come, or 'sending' with an expired lease (its worker died). Claims take one advisory lock, so
-- they run one at a time across processes and each sees the others' committed claims (a
-- function's statements each take a fresh snapshot: the claim's is taken after the lock): the
-- per-endpoint cap holds exactly. The lease_until returned is the claim's token.
CREATE FUNCTION webhooks.claim_messages(p_limit integer, p_per_endpoint integer,
                                        p_lease_s double precision)
RETURNS TABLE (
    message_id bigint, public_id text, endpoint_id bigint, attempts_made integer,
    next_trigger text, lease_until timestamptz, url text, event_type text, payload text,
    occurred_at timestamptz, secret_ids text[], secrets_sealed bytea[]
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('webhooks.claim'));
    RETURN QUERY
    WITH candidates AS (
        SELECT e.endpoint_id,
               p_per_endpoint - (
                   SELECT count(*) FROM webhooks.message f
                   WHERE f.endpoint_id = e.endpoint_id AND f.state = 'sending'
                     AND f.lease_until >= now()
               )::int AS free
        FROM webhooks.endpoint e
        WHERE e.enabled
          AND EXISTS (
              SELECT 1 FROM webhooks.message d
              WHERE d.endpoint_id = e.endpoint_id AND d.state IN ('pending', 'sending')
                AND d.next_attempt_at <= now()
          )
    ), picked AS (
        SELECT p.message_id, p.next_attempt_at,
               row_number() OVER (
                   PARTITION BY c.endpoint_id ORDER BY p.next_attempt_at, p.message_id
               ) AS turn
        FROM candidates c
        CROSS JOIN LATERAL (
            SELECT m.message_id, m.next_attempt_at FROM webhooks.message m
            WHERE m.endpoint_id = c.endpoint_id
              AND m.state IN ('pending', 'sending')
              AND m.next_attempt_at <= now()
              AND (m.state = 'pending' OR m.lease_until < now())
            ORDER BY m.next_attempt_at, m.message_id
            LIMIT c.free
            FOR UPDATE SKIP LOCKED
        ) p
        WHERE c.free > 0
    ), chosen AS (
        SELECT k.message_id FROM picked k ORDER BY k.turn, k.next_attempt_at, k.message_id
        LIMIT p_limit
    ), claimed AS (
        UPDATE webhooks.message m
        SET state = 'sending', lease_until = now() + make_interval(secs => p_lease_s)
        FROM chosen c
        WHERE m.message_id = c.message_id
        RETURNING m.message_id, m.public_id, m.endpoint_id, m.event_id, m.attempts_made,
                  m.next_trigger, m.lease_until
    )
    SELECT c.message_id, c.public_id, c.endpoint_id, c.attempts_made, c.next_trigger,
           c.lease_until, e.url, o.event_type, o.payload::text, o.occurred_at,
           ARRAY(
               SELECT s.secret_id FROM webhooks.endpoint_secret s
               WHERE s.endpoint_id = c.endpoint_id
                 AND (s.expires_at IS NULL OR s.expires_at > now())
               ORDER BY s.created_at DESC, s.secret_id
           ),
           ARRAY(
               SELECT s.secret_sealed FROM webhooks.endpoint_secret s
               WHERE s.endpoint_id = c.endpoint_id
                 AND (s.expires_at IS NULL OR s.expires_at > now())
               ORDER BY s.created_at DESC, s.secret_id
           )
    FROM claimed c
    JOIN webhooks.endpoint e ON e.endpoint_id = c.endpoint_id
    JOIN event_outbox o ON o.event_id = c.event_id;
END $$;
