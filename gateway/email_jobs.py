"""Email wiring (issue 16): the Mailer built from Settings, and its periodic job."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from gateway.workers import Job
from infra.settings import Settings
from partners import keybox
from shoppers import expiry
from shoppers.mail import sender, transport
from shoppers.mail.unsubscribe import Unsubscribes

EMAIL_INTERVAL_S = 5.0


def master_key(settings: Settings) -> bytes:
    """The network's master key (configured, or the data dir's file, created if missing)."""
    if settings.master_key:
        return keybox.parse_master_key(settings.master_key)
    keybox.load_or_create(settings.data_dir, None)  # the file exists from here on
    return keybox.parse_master_key(
        (settings.data_dir / keybox.KEY_FILE_NAME).read_text(encoding="utf-8")
    )


def public_base_url(settings: Settings) -> str:
    return settings.public_base_url or f"http://{settings.host}:{settings.port}"


def unsubscribes(settings: Settings) -> Unsubscribes:
    return Unsubscribes.from_master_key(master_key(settings), public_base_url(settings))


def mailer(settings: Settings) -> sender.Mailer:
    return sender.Mailer(
        transport=transport.from_settings(settings.smtp_url, settings.data_dir),
        sender=settings.email_from,
        unsubscribes=unsubscribes(settings),
    )


def mail_jobs(settings: Settings) -> list[Job]:
    """The email job; also applies the expiry notice distances to the notice job."""
    expiry.configure_notice_days(settings.expiry_notice_days)
    configured = mailer(settings)

    async def send(pool: asyncpg.Pool) -> int:
        return await sender.run_once(pool, configured, now=datetime.now(UTC))

    return [Job("email.send", EMAIL_INTERVAL_S, send, sender.EVENTS_BATCH_MAX)]
