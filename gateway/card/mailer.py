"""How a sign-in code reaches a shopper's mailbox: a small interface, filled by the email
package (`shoppers.mail`) when it is present.

The card page needs two things of email: which shopper an address belongs to, and a way to
send that shopper a code. Both are behind `CodeMail`, chosen once per app by `code_mail()`.
"""

from __future__ import annotations

from typing import Protocol

from infra.db import Conn
from infra.settings import Settings


class CodeMail(Protocol):
    async def shopper_for_email(self, conn: Conn, email: str) -> int | None: ...

    async def send_code(
        self, conn: Conn, *, shopper_id: int, email: str, code: str, locale: str
    ) -> None: ...


class NoEmail:
    """No email package: no shopper has an address, so no code is ever sent."""

    async def shopper_for_email(self, conn: Conn, email: str) -> int | None:
        return None

    async def send_code(
        self, conn: Conn, *, shopper_id: int, email: str, code: str, locale: str
    ) -> None:
        raise AssertionError("no shopper has an address without the email package")


def code_mail(settings: Settings) -> CodeMail:
    return NoEmail()
