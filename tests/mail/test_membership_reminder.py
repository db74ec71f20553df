"""The renewal reminder end to end: real PostgreSQL, a real SMTP server on 127.0.0.1, the
membership worker and the email job as the workers run them; one message per period, in the
shopper's language, only to a shopper with an address and consent."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg

from contracts.membership import MembershipSale, PlanBenefits, PlanCreate
from partners.membership import renewal, service
from tests.mail.test_email_e2e import Inbox, body, drain, mailer_for, new_shopper, smtp
from tests.support import program

__all__ = ["smtp"]  # the fixture, shared


async def test_a_week_before_renewal_the_shopper_gets_one_reminder(
    pool: asyncpg.Pool, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    partner_id = await program.partner(pool, "remind-seller")
    async with pool.acquire() as conn, conn.transaction():
        plan = await service.create_plan(
            conn,
            PlanCreate(
                code="remind",
                name="Plus",
                price_minor=999,
                currency="EUR",
                term="monthly",
                benefits=PlanBenefits(),
            ),
            actor="test",
        )
        ids = {}
        for locale, consent in (("en", True), ("ru", True), ("no", False)):
            shopper_id = await new_shopper(
                conn,
                partner_id,
                email=f"{locale}@plus.example",
                locale="en" if locale == "no" else locale,
                consent=consent,
            )
            card = await conn.fetchval(
                "SELECT card_number FROM shopper_cards WHERE shopper_id = $1", shopper_id
            )
            sold = await service.sell(
                conn,
                partner_id,
                MembershipSale(
                    partner_ref=f"remind-{locale}",
                    card_number=card,
                    plan_id=plan.id,
                    price_minor=999,
                    currency="EUR",
                ),
            )
            ids[locale] = sold.id
    now = datetime.now(UTC)
    renews_at = now + timedelta(days=3)
    await pool.execute(
        "UPDATE memberships SET period_end = $1 WHERE id = ANY($2::bigint[])",
        renews_at,
        list(ids.values()),
    )

    assert await renewal.remind_due(pool, now=now - timedelta(days=5)) == 0  # 8 days before
    await asyncio.gather(renewal.remind_due(pool, now=now), renewal.remind_due(pool, now=now))
    assert await renewal.remind_due(pool, now=now) == 0  # once per period
    mailer = mailer_for(port)
    await drain(pool, mailer)

    assert inbox.to("no@plus.example") == []  # no marketing consent
    (en,) = inbox.to("en@plus.example")
    assert en["Subject"] == f"Plus renews on {renews_at.day} {renews_at.strftime('%B %Y')}"
    assert "for EUR\u00a09.99." in body(en, "plain")
    (ru,) = inbox.to("ru@plus.example")
    assert ru["Subject"].startswith("Подписка Plus продлится")
    assert "за 9,99\u00a0EUR" in body(ru, "html")
