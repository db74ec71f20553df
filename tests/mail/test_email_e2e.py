"""Email end to end: real PostgreSQL, real ledger lots, a real SMTP server (aiosmtpd) on
127.0.0.1, the expiry notice job and the email job as the workers run them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller

from infra.db import Conn
from ledger import service as ledger
from shoppers import expiry, tiers
from shoppers import service as shoppers
from shoppers.mail import contacts, sender, transport
from shoppers.mail.sign_in import SignInOutcome, send_sign_in_code
from shoppers.mail.unsubscribe import Unsubscribes
from tests.support.server import free_port, running_server, server_settings

NOW = datetime.now(UTC)
DAY = timedelta(days=1)
MASTER_KEY = bytes(range(32))


class Inbox:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body((subtype,))
    assert part is not None, subtype
    content: str = part.get_content()
    return content


def mailer_for(port: int, base_url: str = "http://127.0.0.1:9") -> sender.Mailer:
    return sender.Mailer(
        transport=transport.Smtp.from_url(f"smtp://127.0.0.1:{port}"),
        sender="Coalition <no-reply@coalition.example>",
        unsubscribes=Unsubscribes.from_master_key(MASTER_KEY, base_url),
    )


async def new_shopper(
    conn: Conn, partner_id: int, *, email: str | None, locale: str, consent: bool
) -> int:
    holder = await shoppers.enroll(conn, partner_id=partner_id, card_number=None)
    await contacts.set_shopper_contact(
        conn, holder.shopper_id, email=email, locale=locale, email_given=True, locale_given=True
    )
    await conn.execute(
        "INSERT INTO shopper_consents (shopper_id, marketing) VALUES ($1, $2)",
        holder.shopper_id,
        consent,
    )
    return holder.shopper_id


async def earn(conn: Conn, shopper_id: int, partner_id: int, days: int) -> None:
    await ledger.earn(
        conn,
        idempotency_key=f"test:{uuid.uuid4().hex}",
        shopper_id=shopper_id,
        partner_id=partner_id,
        points=2_021,
        issue_price_micros=10_000,
        expires_at=NOW + days * DAY,
    )


async def drain(pool: asyncpg.Pool, mailer: sender.Mailer) -> None:
    while await sender.run_once(pool, mailer, now=datetime.now(UTC)):
        pass


async def test_expiry_notices_reach_smtp_once_in_the_shoppers_language(
    pool: asyncpg.Pool, database_url: str, smtp: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, port = smtp
    async with pool.acquire() as conn, conn.transaction():
        partner_id: int = await conn.fetchval(
            "INSERT INTO partners (slug, name, created_by) VALUES ('mail-p', 'Mail', 't') "
            "RETURNING id"
        )
        english = await new_shopper(
            conn, partner_id, email="en@shop.example", locale="en", consent=True
        )
        russian = await new_shopper(
            conn, partner_id, email="ru@shop.example", locale="ru", consent=True
        )
        opted_out = await new_shopper(
            conn, partner_id, email="no@shop.example", locale="en", consent=False
        )
        for shopper_id in (english, russian, opted_out):
            await earn(conn, shopper_id, partner_id, days=20)

    mailer = mailer_for(port)
    assert await expiry.record_expiry_notices(pool, now=NOW, days_before=(30, 7)) == 3
    # two email workers at once, then again: each notice is sent once
    await asyncio.gather(
        sender.run_once(pool, mailer, now=NOW), sender.run_once(pool, mailer, now=NOW)
    )
    await drain(pool, mailer)
    assert await expiry.record_expiry_notices(pool, now=NOW, days_before=(30, 7)) == 0
    await drain(pool, mailer)

    assert len(inbox.messages) == 2
    assert inbox.to("no@shop.example") == []
    (en,) = inbox.to("en@shop.example")
    assert en["Subject"] == f"2,021 points expire on {(NOW + 20 * DAY).day} " + (
        (NOW + 20 * DAY).strftime("%B %Y")
    )
    assert "2,021 of your points expire" in body(en, "plain")
    (ru,) = inbox.to("ru@shop.example")
    assert ru["Subject"].startswith("2\u00a0021 балл сгорает")
    assert "ваш балл сгорит" in body(ru, "plain")
    assert "ваш балл сгорит" in body(ru, "html")
    assert ru["Content-Language"] == "ru"

    # RFC 8058 headers, and the one-click POST unsubscribes (through the real app)
    assert en["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = en["List-Unsubscribe"].strip("<>")
    settings = server_settings(database_url, tmp_path, master_key=MASTER_KEY.hex())
    async with running_server(settings) as base, httpx.AsyncClient() as client:
        query = link.partition("?")[2]
        preview = await client.get(f"{base}/v1/email/unsubscribe?{query}")
        assert preview.status_code == 200, preview.text
        assert preview.json()["already_unsubscribed"] is False
        done = await client.post(
            f"{base}/v1/email/unsubscribe?{query}",
            content="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert done.status_code == 200, done.text
        bad = await client.post(f"{base}/v1/email/unsubscribe?token=1.{'A' * 43}")
        assert bad.status_code == 400
        assert bad.json()["code"] == "unsubscribe_token_invalid"
        schema = (await client.get(f"{base}/schema")).json()
        assert set(schema["paths"]["/v1/email/unsubscribe"]) >= {"get", "post"}

    # the 7-day notice: the unsubscribed shopper gets nothing, the Russian one gets it once
    await expiry.record_expiry_notices(pool, now=NOW + 14 * DAY, days_before=(30, 7))
    await drain(pool, mailer)
    assert len(inbox.to("en@shop.example")) == 1
    assert len(inbox.to("ru@shop.example")) == 2


async def test_the_eml_fallback_writes_a_file(pool: asyncpg.Pool, tmp_path: Path) -> None:
    async with pool.acquire() as conn, conn.transaction():
        partner_id: int = await conn.fetchval(
            "INSERT INTO partners (slug, name, created_by) VALUES ('eml-p', 'Eml', 't') "
            "RETURNING id"
        )
        shopper_id = await new_shopper(
            conn, partner_id, email="eml@shop.example", locale="en", consent=False
        )
    mailer = sender.Mailer(
        transport=transport.from_settings(None, tmp_path),
        sender="Coalition <no-reply@coalition.example>",
        unsubscribes=Unsubscribes.from_master_key(MASTER_KEY, "http://127.0.0.1:9"),
    )
    outcome = await send_sign_in_code(
        pool, mailer, shopper_id=shopper_id, code="482913", request_key="r1", ttl_s=600
    )
    assert outcome is SignInOutcome.SENT  # transactional: no marketing consent needed
    again = await send_sign_in_code(
        pool, mailer, shopper_id=shopper_id, code="482913", request_key="r1", ttl_s=600
    )
    assert again is SignInOutcome.ALREADY_SENT
    (written,) = list((tmp_path / "mail").glob("*.eml"))
    parsed = message_from_bytes(written.read_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["To"] == "eml@shop.example"
    assert "482913" in body(parsed, "plain")
    assert parsed["List-Unsubscribe"] is None


async def test_tier_and_statement_mail_go_once_to_the_right_recipient(
    pool: asyncpg.Pool, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    async with pool.acquire() as conn, conn.transaction():
        partner_id: int = await conn.fetchval(
            "INSERT INTO partners (slug, name, created_by) VALUES ('tier-p', 'Tier', 't') "
            "RETURNING id"
        )
        shopper_id = await new_shopper(
            conn, partner_id, email="gold@shop.example", locale="en", consent=True
        )
        await contacts.set_finance_contact(
            conn, partner_id, email="finance@tier.example", locale="ru", actor="ops"
        )
        q = tiers.Qualification(points_earned_12m=3_000, spend_minor_12m=0)
        await tiers.upgrade_if_qualified(conn, shopper_id, q, now=NOW)
        from infra import outbox

        await outbox.record(
            conn,
            "statement.ready",
            partner_id=partner_id,
            payload={
                "statement_id": 77,
                "period_id": 1,
                "period_start": None,
                "period_end": NOW.isoformat(),
                "currency": "EUR",
                "state": "draft",
                "closing_balance_micros": 0,
                "payment_due_micros": 1_230_000,
                "payer": "partner",
                "payment_minor": 123,
            },
        )
    mailer = mailer_for(port)
    await drain(pool, mailer)
    await drain(pool, mailer)
    (tier_mail,) = inbox.to("gold@shop.example")
    assert tier_mail["Subject"] == "You have reached Silver"
    (statement,) = inbox.to("finance@tier.example")
    assert statement["Subject"] == "Акт сверки 77 готов"
    assert "1,23\u00a0EUR" in body(statement, "plain")
    assert statement["List-Unsubscribe"] is None
