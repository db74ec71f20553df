"""Addresses and languages: a shopper's (personal data, erased) and a partner's finance contact.

The address check is deliberately plain (RFC 5321 lengths, a dot-atom local part, an ASCII
domain of letters, digits and hyphens with a letter TLD): it refuses what cannot be a
deliverable address without pretending to validate deliverability, which only sending does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from contracts.email import LOCALE_DEFAULT, LOCALES, FinanceContact
from contracts.errors import DomainError, ErrorCode
from infra.db import Conn

__all__ = [
    "EmailInvalid",
    "LocaleUnsupported",
    "ShopperContact",
    "checked_email",
    "checked_locale",
    "contact_of",
    "erase_shopper",
    "finance_contact",
    "move_on_merge",
    "set_finance_contact",
    "set_shopper_contact",
]

EMAIL_CHARS_MAX = 254  # RFC 5321: a path is 256 octets including the angle brackets
LOCAL_PART_CHARS_MAX = 64
DOMAIN_LABEL_CHARS_MAX = 63
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?")
_TLD = re.compile(r"[A-Za-z]{2,63}")

CONTACT_OF = """
SELECT email, locale FROM shopper_contacts WHERE shopper_id = $1
"""

# $2 / $3 NULL with $4 / $5 false: leave the column as it is.
UPSERT_CONTACT = """
INSERT INTO shopper_contacts (shopper_id, email, locale)
VALUES ($1, $2, coalesce($3, 'en'))
ON CONFLICT (shopper_id) DO UPDATE SET
    email = CASE WHEN $4 THEN EXCLUDED.email ELSE shopper_contacts.email END,
    locale = CASE WHEN $5 THEN EXCLUDED.locale ELSE shopper_contacts.locale END,
    updated_at = now()
"""

DELETE_CONTACT = "DELETE FROM shopper_contacts WHERE shopper_id = $1"
DELETE_UNSUBSCRIBES = "DELETE FROM mail.unsubscribe WHERE shopper_id = $1"

# A merge keeps the survivor's address; the absorbed one's moves only if the survivor has none.
MOVE_CONTACT = """
WITH gone AS (DELETE FROM shopper_contacts WHERE shopper_id = $1 RETURNING *)
INSERT INTO shopper_contacts (shopper_id, email, locale, updated_at)
SELECT $2, email, locale, updated_at FROM gone
ON CONFLICT (shopper_id) DO NOTHING
"""

FINANCE_CONTACT = """
SELECT partner_id, email, locale, updated_at, updated_by
FROM partner_finance_contacts WHERE partner_id = $1
"""

UPSERT_FINANCE_CONTACT = """
INSERT INTO partner_finance_contacts (partner_id, email, locale, updated_by)
SELECT p.id, $2, $3, $4 FROM partners p WHERE p.id = $1
ON CONFLICT (partner_id) DO UPDATE SET
    email = EXCLUDED.email, locale = EXCLUDED.locale, updated_by = EXCLUDED.updated_by,
    updated_at = now()
RETURNING partner_id, email, locale, updated_at, updated_by
"""


class EmailInvalid(DomainError):
    code = ErrorCode.EMAIL_INVALID

    def __init__(self, reason: str) -> None:
        super().__init__(f"not a usable email address: {reason}")


class LocaleUnsupported(DomainError):
    code = ErrorCode.LOCALE_UNSUPPORTED

    def __init__(self) -> None:
        super().__init__(f"locale must be one of {', '.join(LOCALES)}")


class PartnerUnknown(DomainError):
    code = ErrorCode.NOT_FOUND

    def __init__(self) -> None:
        super().__init__("no such partner")


@dataclass(frozen=True)
class ShopperContact:
    email: str | None
    locale: str


def checked_email(raw: str) -> str:
    """The address as stored (the domain lower-cased), or EmailInvalid."""
    if len(raw) > EMAIL_CHARS_MAX:
        raise EmailInvalid(f"longer than {EMAIL_CHARS_MAX} characters")
    if raw != raw.strip() or not raw.isascii() or not raw.isprintable():
        raise EmailInvalid("spaces, control or non-ASCII characters")
    local, at, domain = raw.rpartition("@")
    if not at or not local or not domain:
        raise EmailInvalid("expected local-part@domain")
    if len(local) > LOCAL_PART_CHARS_MAX or not _LOCAL_PART.fullmatch(local):
        raise EmailInvalid("the part before @ is not a plain local part")
    labels = domain.split(".")
    if len(labels) < 2 or not _TLD.fullmatch(labels[-1]):
        raise EmailInvalid("the domain needs a dot and a top-level domain of letters")
    if any(len(label) > DOMAIN_LABEL_CHARS_MAX or not _LABEL.fullmatch(label) for label in labels):
        raise EmailInvalid("the domain is not letters, digits and hyphens")
    return f"{local}@{domain.lower()}"


def checked_locale(raw: str) -> str:
    if raw not in LOCALES:
        raise LocaleUnsupported()
    return raw


async def contact_of(conn: Conn, shopper_id: int) -> ShopperContact:
    row = await conn.fetchrow(CONTACT_OF, shopper_id)
    if row is None:
        return ShopperContact(email=None, locale=LOCALE_DEFAULT)
    return ShopperContact(email=row["email"], locale=row["locale"])


async def set_shopper_contact(
    conn: Conn,
    shopper_id: int,
    *,
    email: str | None,
    locale: str | None,
    email_given: bool,
    locale_given: bool,
) -> None:
    """Set the address (None with `email_given`: remove it) and/or the language; checked."""
    checked = None if email is None else checked_email(email)
    language = None if locale is None else checked_locale(locale)
    if not (email_given or locale_given):
        return
    await conn.execute(UPSERT_CONTACT, shopper_id, checked, language, email_given, locale_given)


async def erase_shopper(conn: Conn, shopper_id: int) -> None:
    """Erasure's part: the address, the language and the unsubscribe record go."""
    await conn.execute(DELETE_CONTACT, shopper_id)
    await conn.execute(DELETE_UNSUBSCRIBES, shopper_id)


async def move_on_merge(conn: Conn, *, absorbed_id: int, survivor_id: int) -> None:
    await conn.execute(MOVE_CONTACT, absorbed_id, survivor_id)


async def finance_contact(conn: Conn, partner_id: int) -> FinanceContact | None:
    row = await conn.fetchrow(FINANCE_CONTACT, partner_id)
    return None if row is None else FinanceContact(**dict(row))


async def set_finance_contact(
    conn: Conn, partner_id: int, *, email: str, locale: str, actor: str
) -> FinanceContact:
    row = await conn.fetchrow(
        UPSERT_FINANCE_CONTACT, partner_id, checked_email(email), checked_locale(locale), actor
    )
    if row is None:
        raise PartnerUnknown()
    return FinanceContact(**dict(row))
