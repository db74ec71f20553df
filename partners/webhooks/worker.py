"""The webhook jobs run by `coalition serve` (registered in gateway/workers.py).

- `fan_out`: queued outbox events -> messages (partners/webhooks/fanout.py).
- `deliver`: a dispatcher. It claims due messages while this process has fewer than
  `IN_FLIGHT_MAX` sends running, starts each send as its own task and claims again whenever
  one finishes (or every `POLL_S` while any runs), so a slow endpoint holds only its own
  `PER_ENDPOINT_MAX` slots and never the others'. A run lasts while sends are in flight; a
  cancelled run (shutdown) cancels its sends, whose leases then expire and are claimed again.
- `measure_queue`: the queue depth gauge.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import UTC, datetime

import asyncpg

from infra.settings import Settings
from partners import keybox
from partners.keybox import KeyBox
from partners.webhooks import _delivery_queries as q
from partners.webhooks import delivery, fanout, secrets, signing
from partners.webhooks.telemetry import (
    WEBHOOK_DELIVERIES,
    WEBHOOK_DELIVERY_LAG_SECONDS,
    WEBHOOK_ENDPOINTS_DISABLED,
    WEBHOOK_QUEUE_DEPTH,
)

log = logging.getLogger(__name__)

PER_ENDPOINT_MAX = 4  # sends in flight to one endpoint, across every process
IN_FLIGHT_MAX = 64  # sends in flight in one process, over all endpoints
POLL_S = 0.2  # while sends run, how often to look for new due messages anyway
FAILING_DISABLE_AFTER_S = 5 * 24 * 3600  # an endpoint failing this long is disabled


class WebhookWorker:
    def __init__(self, settings: Settings, box: KeyBox | None = None) -> None:
        self._schedule_s = settings.webhook_retry_schedule_s
        self._box = box or keybox.load_or_create(settings.data_dir, settings.master_key)
        allow_loopback = settings.webhooks_allow_loopback
        # Plain http only where loopback is allowed (the demo, the tests): production is https.
        self._sender = delivery.Sender(
            allow_loopback=allow_loopback, require_https=not allow_loopback
        )
        self._in_flight: set[asyncio.Task[None]] = set()

    async def fan_out(self, pool: asyncpg.Pool) -> int:
        return await fanout.fan_out(pool, first_delay_s=float(self._schedule_s[0]))

    async def measure_queue(self, pool: asyncpg.Pool) -> int:
        async with pool.acquire() as conn:
            row = await conn.fetchrow(q.QUEUE_DEPTH)
        assert row is not None
        WEBHOOK_QUEUE_DEPTH.labels("messages").set(row["messages"])
        WEBHOOK_QUEUE_DEPTH.labels("fanout").set(row["fanout"])
        return 0

    async def deliver(self, pool: asyncpg.Pool) -> int:
        """Claim and start sends until none is in flight; the number of messages claimed."""
        claimed_total = 0
        try:
            while True:
                free = IN_FLIGHT_MAX - len(self._in_flight)
                if free > 0:
                    claimed = await delivery.claim(
                        pool, limit=free, per_endpoint_max=PER_ENDPOINT_MAX
                    )
                    for message in claimed:
                        self._start(pool, message)
                    claimed_total += len(claimed)
                if not self._in_flight:
                    return claimed_total
                await asyncio.wait(
                    self._in_flight, timeout=POLL_S, return_when=asyncio.FIRST_COMPLETED
                )
        except asyncio.CancelledError:
            await self._cancel_sends()
            raise

    def _start(self, pool: asyncpg.Pool, message: delivery.Claimed) -> None:
        task = asyncio.create_task(self._deliver_one(pool, message), name="webhooks.send")
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _cancel_sends(self) -> None:
        tasks = list(self._in_flight)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._sender.aclose()

    async def _deliver_one(self, pool: asyncpg.Pool, message: delivery.Claimed) -> None:
        try:
            outcome = await self._send(message)
        except Exception as exc:  # a message we cannot build fails its try, recorded as such
            log.exception("webhook message not built", extra={"webhook_message": message.public_id})
            outcome = delivery.Outcome(None, 0, f"internal error: {type(exc).__name__}")
        try:
            state, retry_in_s = delivery.next_state(outcome, message, self._schedule_s)
            recorded = await delivery.record(
                pool,
                message,
                outcome,
                state=state,
                retry_in_s=retry_in_s,
                failing_limit_s=FAILING_DISABLE_AFTER_S,
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # The database went away mid-delivery: the lease expires, the message is re-sent.
            log.warning(
                "webhook delivery not recorded",
                extra={"webhook_message": message.public_id, "error": str(exc)},
            )
            return
        self._observe(message, outcome, state, recorded)

    async def _send(self, message: delivery.Claimed) -> delivery.Outcome:
        live = [
            secrets.open_sealed(self._box, secret_id, sealed)
            for secret_id, sealed in zip(message.secret_ids, message.secrets_sealed, strict=True)
        ]
        if not live:  # never expected: an endpoint always has a current secret
            return delivery.Outcome(None, 0, "the endpoint has no signing secret")
        content = signing.body(message.event_type, message.occurred_at, json.loads(message.payload))
        headers = signing.headers(message.public_id, int(time.time()), content, live)
        return await self._sender.send(message.url, headers, content)

    def _observe(
        self,
        message: delivery.Claimed,
        outcome: delivery.Outcome,
        state: str,
        recorded: delivery.Recorded,
    ) -> None:
        if not recorded.recorded:
            outcome_label = "lost_lease"
        elif outcome.success:
            outcome_label = "delivered"
            lag_s = (datetime.now(UTC) - message.occurred_at).total_seconds()
            WEBHOOK_DELIVERY_LAG_SECONDS.observe(max(lag_s, 0.0))
        elif outcome.refused:
            outcome_label = "refused"
        elif state == "failed":
            outcome_label = "failed"
        else:
            outcome_label = "failed_attempt"
        WEBHOOK_DELIVERIES.labels(outcome_label).inc()
        if recorded.disabled_reason is not None:
            WEBHOOK_ENDPOINTS_DISABLED.labels(recorded.disabled_reason).inc()
            # The operator's notice (with the outbox event webhook_endpoint.disabled).
            log.warning(
                "webhook endpoint disabled",
                extra={
                    "endpoint": recorded.endpoint_public_id,
                    "partner_id": recorded.partner_id,
                    "reason": recorded.disabled_reason,
                    "response_status": outcome.response_status,
                },
            )
