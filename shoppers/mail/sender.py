"""The outbox consumer and the sent-once ledger.

A run (`run_once`, the `email.send` job) does two things, each safe in any number of processes:

1. **New events.** One transaction takes up to `EVENTS_BATCH_MAX` rows of `mail.queue` with
   `FOR UPDATE SKIP LOCKED` (two workers never take the same event) and deletes them; for each
   message an event makes it decides, with the recipient's address, consent and erasure as
   they are now, whether to send, and claims the message by inserting its `mail.delivery` row
   (UNIQUE on recipient, reason and subject: a second claim of the same message inserts
   nothing). The queue rows and the claims commit together. Then each claimed message is
   rendered and sent, and marked `sent` in a short transaction of its own.
2. **Claims whose lease has passed** (`lease_until <= now`, state still `claimed`): a worker
   died between its claim and its mark, or a transient failure asked for a later try. The
   row is locked (SKIP LOCKED), its lease extended, and the message re-checked (consent and
   erasure again: a shopper who unsubscribed meanwhile gets nothing, `dropped`) and sent with
   the same Message-ID.

So each message is decided once and sent once, except in one window: a worker that dies after
the SMTP server accepted a message and before the `sent` mark committed leaves it `claimed`,
and it is sent again after the lease (at-least-once at the SMTP boundary, with the same
Message-ID so receivers can drop the copy). A worker only starts a send it can finish before
its lease ends (`SEND_BUDGET_S`), so two live workers never send one message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from infra.db import Conn, Pool
from shoppers.mail import plan as planning
from shoppers.mail.compose import Envelope, compose, new_message_id
from shoppers.mail.render import render
from shoppers.mail.telemetry import EMAILS
from shoppers.mail.transport import SendFailed, Transport
from shoppers.mail.unsubscribe import Unsubscribes

__all__ = ["LEASE_S", "Mailer", "retry_due", "run_once", "send_new"]

log = logging.getLogger(__name__)

EVENTS_BATCH_MAX = 50  # events taken per transaction
RETRIES_BATCH_MAX = 50
LEASE_S = 600.0  # a claim's lease: another worker may send it after this
SEND_BUDGET_S = 120.0  # the longest one send may take (then it is a transient failure)
# after a transient failure, the next try waits this long; after the last, the message fails
RETRY_DELAYS_S = (60, 300, 1800, 7200, 21600)

CLAIM_EVENTS = """
WITH taken AS (
    DELETE FROM mail.queue q
    WHERE q.event_id IN (
        SELECT event_id FROM mail.queue ORDER BY event_id LIMIT $1 FOR UPDATE SKIP LOCKED
    )
    RETURNING q.event_id
)
SELECT o.event_id, o.event_type, o.partner_id, o.payload::text AS payload
FROM event_outbox o JOIN taken t ON t.event_id = o.event_id
ORDER BY o.event_id
"""

CLAIM_DELIVERY = """
INSERT INTO mail.delivery
    (recipient_kind, recipient_id, reason, subject_key, event_id, message_id, lease_until)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (recipient_kind, recipient_id, reason, subject_key) DO NOTHING
RETURNING delivery_id
"""

DUE = """
SELECT d.delivery_id, d.recipient_kind, d.recipient_id, d.reason, d.subject_key, d.message_id,
       o.event_type, o.partner_id, o.payload::text AS payload
FROM mail.delivery d JOIN event_outbox o ON o.event_id = d.event_id
WHERE d.state = 'claimed' AND d.event_id IS NOT NULL AND d.lease_until <= $1
ORDER BY d.lease_until
LIMIT $2
FOR UPDATE OF d SKIP LOCKED
"""

EXTEND_LEASES = "UPDATE mail.delivery SET lease_until = $2 WHERE delivery_id = ANY($1::bigint[])"

MARK_SENT = """
UPDATE mail.delivery SET state = 'sent', sent_at = $2, attempts = attempts + 1, last_error = NULL
WHERE delivery_id = $1 AND state = 'claimed'
"""

# A transient failure: try again at $2, or fail once the schedule is spent ($4 attempts).
MARK_RETRY = """
UPDATE mail.delivery
SET attempts = attempts + 1, last_error = $3,
    state = CASE WHEN attempts + 1 >= $4 THEN 'failed' ELSE 'claimed' END,
    lease_until = $2
WHERE delivery_id = $1 AND state = 'claimed'
RETURNING state
"""

MARK_FINAL = """
UPDATE mail.delivery SET state = $2, attempts = attempts + $3, last_error = $4
WHERE delivery_id = $1 AND state = 'claimed'
"""


@dataclass(frozen=True)
class Mailer:
    """What sending needs: where to, as whom, and how to link an unsubscribe."""

    transport: Transport
    sender: str
    unsubscribes: Unsubscribes
    lease_s: float = LEASE_S


@dataclass(frozen=True)
class _Claimed:
    delivery_id: int
    message_id: str
    planned: planning.Planned
    to: planning.Recipient


async def run_once(pool: Pool, mailer: Mailer, *, now: datetime) -> int:
    """One run of the job: new events, then claims whose lease has passed."""
    return await send_new(pool, mailer, now=now) + await retry_due(pool, mailer, now=now)


async def send_new(pool: Pool, mailer: Mailer, *, now: datetime) -> int:
    """Take a batch of queued events, claim their messages, send them; returns events taken."""
    started = time.monotonic()
    lease_until = now + timedelta(seconds=mailer.lease_s)
    claimed: list[_Claimed] = []
    async with pool.acquire() as conn, conn.transaction():
        events = await conn.fetch(CLAIM_EVENTS, EVENTS_BATCH_MAX)
        for event in events:
            try:
                messages = planning.plan(event["event_type"], event["partner_id"], event["payload"])
            except (KeyError, TypeError, ValueError):
                # A payload of a shape this version cannot read: consumed, never retried
                # (retrying would block the queue behind it forever).
                log.exception("email: unreadable event", extra={"event_id": event["event_id"]})
                continue
            for planned in messages:
                claim = await _decide(conn, mailer, planned, event["event_id"], lease_until)
                if claim is not None:
                    claimed.append(claim)
    await _send_all(pool, mailer, claimed, started=started, now=now)
    return len(events)


async def retry_due(pool: Pool, mailer: Mailer, *, now: datetime) -> int:
    """Send again the claims whose lease has passed; returns how many were taken."""
    started = time.monotonic()
    claimed: list[_Claimed] = []
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(DUE, now, RETRIES_BATCH_MAX)
        lease_until = now + timedelta(seconds=mailer.lease_s)
        await conn.execute(EXTEND_LEASES, [row["delivery_id"] for row in rows], lease_until)
        for row in rows:
            planned = _planned_for(row)
            to = await planning.recipient(conn, planned)
            if to.refused is not None:
                await conn.execute(MARK_FINAL, row["delivery_id"], "dropped", 0, to.refused)
                EMAILS.labels(planned.reason, "dropped").inc()
                continue
            claimed.append(_Claimed(row["delivery_id"], row["message_id"], planned, to))
    await _send_all(pool, mailer, claimed, started=started, now=now)
    return len(rows)


async def _decide(
    conn: Conn,
    mailer: Mailer,
    planned: planning.Planned,
    event_id: int,
    lease_until: datetime,
) -> _Claimed | None:
    to = await planning.recipient(conn, planned)
    if to.refused is not None:
        EMAILS.labels(planned.reason, to.refused).inc()
        return None
    message_id = new_message_id(mailer.sender)
    delivery_id = await conn.fetchval(
        CLAIM_DELIVERY,
        planned.recipient_kind,
        planned.recipient_id,
        planned.reason,
        planned.subject_key,
        event_id,
        message_id,
        lease_until,
    )
    if delivery_id is None:
        EMAILS.labels(planned.reason, "duplicate").inc()
        return None
    return _Claimed(delivery_id, message_id, planned, to)


def _planned_for(row: Any) -> planning.Planned:
    for planned in planning.plan(row["event_type"], row["partner_id"], row["payload"]):
        if (planned.recipient_kind, planned.recipient_id, planned.reason, planned.subject_key) == (
            row["recipient_kind"],
            row["recipient_id"],
            row["reason"],
            row["subject_key"],
        ):
            return planned
    raise AssertionError(f"delivery {row['delivery_id']} matches no message of its event")


async def _send_all(
    pool: Pool, mailer: Mailer, claimed: list[_Claimed], *, started: float, now: datetime
) -> None:
    for claim in claimed:
        if time.monotonic() + SEND_BUDGET_S > started + mailer.lease_s:
            # The lease would end during this send: leave the rest to the next holder.
            log.warning("email batch outran its lease", extra={"left": len(claimed)})
            return
        await deliver(pool, mailer, claim.delivery_id, claim.message_id, claim.planned, claim.to)


async def deliver(
    pool: Pool,
    mailer: Mailer,
    delivery_id: int,
    message_id: str,
    planned: planning.Planned,
    to: planning.Recipient,
    *,
    retry: bool = True,
) -> str:
    """Render, send and mark one claimed message; returns its metric outcome."""
    assert to.email is not None, to
    assert to.refused is None, to
    # the header is for mail clients (one-click POST), the body's link for a person (a page)
    unsubscribe_url = unsubscribe_page_url = None
    if planned.wants_consent and to.shopper_id is not None:
        unsubscribe_url = mailer.unsubscribes.url(to.shopper_id)
        unsubscribe_page_url = mailer.unsubscribes.page_url(to.shopper_id)
    sent_at = datetime.now(UTC)
    try:
        rendered = render(
            planned.reason,
            to.locale,
            {**planned.context, **to.extra, "unsubscribe_url": unsubscribe_page_url},
        )
        message = compose(
            Envelope(mailer.sender, to.email, to.locale, message_id, sent_at, unsubscribe_url),
            rendered,
        )
    except Exception as exc:  # a template or header bug: this message can never be sent
        log.exception("email could not be composed", extra={"delivery_id": delivery_id})
        return await _mark(pool, delivery_id, planned.reason, "failed", str(exc))
    try:
        async with asyncio.timeout(SEND_BUDGET_S):
            await mailer.transport.send(message)
    except (SendFailed, TimeoutError) as exc:
        transient = isinstance(exc, TimeoutError) or exc.transient
        detail = str(exc) or type(exc).__name__
        log.warning(
            "email not sent",
            extra={"delivery_id": delivery_id, "error": detail, "transient": transient},
        )
        if transient and retry:
            return await _retry_later(pool, delivery_id, planned.reason, detail)
        return await _mark(pool, delivery_id, planned.reason, "failed", detail)
    async with pool.acquire() as conn:
        await conn.execute(MARK_SENT, delivery_id, sent_at)
    EMAILS.labels(planned.reason, "sent").inc()
    return "sent"


async def _retry_later(pool: Pool, delivery_id: int, reason: str, detail: str) -> str:
    async with pool.acquire() as conn:
        attempts: int = await conn.fetchval(
            "SELECT attempts FROM mail.delivery WHERE delivery_id = $1", delivery_id
        )
        delay_s = RETRY_DELAYS_S[min(attempts, len(RETRY_DELAYS_S) - 1)]
        at = datetime.now(UTC) + timedelta(seconds=delay_s)
        state = await conn.fetchval(
            MARK_RETRY, delivery_id, at, detail[:500], len(RETRY_DELAYS_S) + 1
        )
    outcome = "failed" if state == "failed" else "retry"
    EMAILS.labels(reason, outcome).inc()
    return outcome


async def _mark(pool: Pool, delivery_id: int, reason: str, state: str, detail: str) -> str:
    async with pool.acquire() as conn:
        await conn.execute(MARK_FINAL, delivery_id, state, 1, detail[:500])
    EMAILS.labels(reason, state).inc()
    return state
