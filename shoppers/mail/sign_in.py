"""One-time sign-in codes by email: transactional, so no consent is needed and no
unsubscribe link is added; only an address and a live shopper.

`send_sign_in_code` is the door for other code (the shopper card page, issue 17): the caller
generates, stores (hashed) and checks the code; this only delivers it, once per
`request_key`, synchronously, and says what happened. It is never retried by the worker (the
code is not stored here): on `FAILED` the caller asks the shopper to request a new code.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from infra.db import Pool
from shoppers.mail import plan as planning
from shoppers.mail.compose import new_message_id
from shoppers.mail.sender import CLAIM_DELIVERY, Mailer, deliver
from shoppers.mail.telemetry import EMAILS

__all__ = ["SignInOutcome", "send_sign_in_code"]

REASON = "sign_in_code"
CODE = re.compile(r"[A-Za-z0-9]{4,12}")
REQUEST_KEY_CHARS_MAX = 100
TTL_S_MIN = 60
TTL_S_MAX = 24 * 3600


class SignInOutcome(StrEnum):
    SENT = "sent"  # the SMTP server (or the .eml directory) accepted it
    ALREADY_SENT = "already_sent"  # this request_key was sent (or claimed) before
    NO_ADDRESS = "no_address"  # the shopper has no email address
    ERASED = "erased"  # the shopper was erased (or never existed)
    FAILED = "failed"  # the server refused it or could not be reached


async def send_sign_in_code(
    pool: Pool,
    mailer: Mailer,
    *,
    shopper_id: int,
    code: str,
    request_key: str,
    ttl_s: int,
) -> SignInOutcome:
    """Email `code` (4-12 letters or digits, valid `ttl_s` seconds) to the shopper's address,
    in their language, at most once per `request_key` (e.g. the id of the stored code row)."""
    if not CODE.fullmatch(code):
        raise ValueError("a sign-in code is 4 to 12 letters or digits")
    if not 1 <= len(request_key) <= REQUEST_KEY_CHARS_MAX:
        raise ValueError(f"request_key is 1 to {REQUEST_KEY_CHARS_MAX} characters")
    if not TTL_S_MIN <= ttl_s <= TTL_S_MAX:
        raise ValueError(f"ttl_s is {TTL_S_MIN} to {TTL_S_MAX} seconds")
    planned = planning.Planned(
        "shopper",
        shopper_id,
        REASON,
        f"code:{request_key}",
        {"code": code, "ttl_minutes": max(1, ttl_s // 60)},
    )
    message_id = new_message_id(mailer.sender)
    lease_until = datetime.now(UTC) + timedelta(seconds=mailer.lease_s)
    async with pool.acquire() as conn, conn.transaction():
        to = await planning.shopper_recipient(conn, shopper_id, consent_needed=False)
        if to.refused is not None:
            EMAILS.labels(REASON, to.refused).inc()
            if to.refused == "skipped_erased":
                return SignInOutcome.ERASED
            return SignInOutcome.NO_ADDRESS
        delivery_id = await conn.fetchval(
            CLAIM_DELIVERY,
            "shopper",
            shopper_id,
            REASON,
            planned.subject_key,
            None,
            message_id,
            lease_until,
        )
    if delivery_id is None:
        EMAILS.labels(REASON, "duplicate").inc()
        return SignInOutcome.ALREADY_SENT
    outcome = await deliver(pool, mailer, delivery_id, message_id, planned, to, retry=False)
    return SignInOutcome.SENT if outcome == "sent" else SignInOutcome.FAILED
