"""How a sign-in code reaches a shopper's mailbox: a small interface over the email package
(`shoppers.mail.sign_in.send_sign_in_code`), so tests and other transports can stand in.

The card page needs two things of email: which shopper an address belongs to, and a way to
send that shopper a code (after the code's row has committed: the sender opens its own
transaction and keys the message by the row, so a retry never sends twice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway import email_jobs
from gateway.card import queries
from infra.db import Conn, Pool
from infra.settings import Settings
from shoppers.mail import sender
from shoppers.mail.sign_in import SignInOutcome, send_sign_in_code


class CodeMail(Protocol):
    async def shopper_for_email(self, conn: Conn, email: str) -> int | None: ...

    async def send_code(
        self, pool: Pool, *, shopper_id: int, code: str, request_key: str, ttl_s: int
    ) -> bool: ...


@dataclass(frozen=True)
class EmailCodeMail:
    """The email package's sender: SMTP (COALITION_SMTP_URL) or .eml files in the data dir."""

    mailer: sender.Mailer

    async def shopper_for_email(self, conn: Conn, email: str) -> int | None:
        rows = await conn.fetch(queries.SHOPPERS_WITH_EMAIL, email)
        # an address shared by two shoppers signs in neither: it cannot say who is asking
        return int(rows[0]["shopper_id"]) if len(rows) == 1 else None

    async def send_code(
        self, pool: Pool, *, shopper_id: int, code: str, request_key: str, ttl_s: int
    ) -> bool:
        outcome = await send_sign_in_code(
            pool,
            self.mailer,
            shopper_id=shopper_id,
            code=code,
            request_key=request_key,
            ttl_s=ttl_s,
        )
        return outcome in {SignInOutcome.SENT, SignInOutcome.ALREADY_SENT}


def code_mail(settings: Settings) -> CodeMail:
    return EmailCodeMail(email_jobs.mailer(settings))
