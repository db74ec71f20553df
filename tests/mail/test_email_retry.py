"""A transient SMTP failure leaves the claim to be sent after its lease, once; a referral
reward mails both shoppers; an unsubscribe between the failure and the retry drops it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from infra import outbox
from shoppers.mail import sender, transport, unsubscribe
from shoppers.mail.unsubscribe import Unsubscribes
from tests.mail.test_email_e2e import MASTER_KEY, Inbox, body, mailer_for, new_shopper
from tests.support.server import free_port

NOW = datetime.now(UTC)


def closed_port_mailer() -> sender.Mailer:
    return sender.Mailer(
        transport=transport.Smtp.from_url(f"smtp://127.0.0.1:{free_port()}"),
        sender="Coalition <no-reply@coalition.example>",
        unsubscribes=Unsubscribes.from_master_key(MASTER_KEY, "http://127.0.0.1:9"),
    )


async def test_a_failed_send_is_retried_after_its_lease_and_sent_once(
    pool: asyncpg.Pool, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    async with pool.acquire() as conn, conn.transaction():
        partner_id: int = await conn.fetchval(
            "INSERT INTO partners (slug, name, created_by) VALUES ('retry-p', 'R', 't') "
            "RETURNING id"
        )
        friend = await new_shopper(
            conn, partner_id, email="friend@shop.example", locale="ru", consent=True
        )
        referrer = await new_shopper(
            conn, partner_id, email="referrer@shop.example", locale="en", consent=True
        )
        await outbox.record(
            conn,
            "referral.rewarded",
            shopper_id=friend,
            payload={
                "referred_shopper_id": friend,
                "referrer_shopper_id": referrer,
                "friend_points": 250,
                "referrer_points": 500,
                "transaction_id": str(uuid.uuid4()),
            },
        )
    # The server is down: both claims stay, to be tried later.
    assert await sender.run_once(pool, closed_port_mailer(), now=NOW) == 1
    async with pool.acquire() as conn:
        states = await conn.fetch(
            "SELECT state, attempts, last_error FROM mail.delivery "
            "WHERE reason = 'referral_rewarded' ORDER BY recipient_id"
        )
    assert [(r["state"], r["attempts"]) for r in states] == [("claimed", 1), ("claimed", 1)]
    assert all(r["last_error"] for r in states)

    mailer = mailer_for(port)
    # Before the retry time nothing is due; the referrer unsubscribes meanwhile.
    assert await sender.retry_due(pool, mailer, now=NOW) == 0
    async with pool.acquire() as conn, conn.transaction():
        await unsubscribe.apply(conn, referrer, now=NOW)
    later = NOW + timedelta(hours=1)
    assert await sender.retry_due(pool, mailer, now=later) == 2
    assert await sender.retry_due(pool, mailer, now=later + timedelta(hours=1)) == 0

    assert inbox.to("referrer@shop.example") == []
    (friend_mail,) = inbox.to("friend@shop.example")
    assert "250" in body(friend_mail, "plain")
    assert friend_mail["Subject"] == "Начислено 250 бонусных баллов за приглашение"
    async with pool.acquire() as conn:
        final = await conn.fetch(
            "SELECT recipient_id, state FROM mail.delivery WHERE reason = 'referral_rewarded'"
        )
    assert {r["recipient_id"]: r["state"] for r in final} == {friend: "sent", referrer: "dropped"}
