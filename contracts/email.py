"""Email wire contracts (issue 16): one-click unsubscribes and partners' finance contacts.

The shopper's own `email` and `locale` ride on the enrollment and profile contracts
(contracts/partners.py `EnrollRequest`, contracts/shoppers.py `Profile`, `ProfileUpdate`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

# The wire refuses anything longer outright; the address check (shoppers/mail/contacts.py)
# then holds addresses to RFC 5321's 254 characters with `email_invalid`.
EMAIL_CHARS_MAX = 320
LOCALE_CHARS_MAX = 16
LOCALES = ("en", "ru")
LOCALE_DEFAULT = "en"
UNSUBSCRIBE_TOKEN_CHARS_MAX = 200

EmailText = Annotated[str, msgspec.Meta(max_length=EMAIL_CHARS_MAX)]
LocaleText = Annotated[str, msgspec.Meta(max_length=LOCALE_CHARS_MAX)]
Locale = Literal["en", "ru"]


class _Request(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Base of every request body: unknown fields are refused, not ignored."""


class _Response(msgspec.Struct, kw_only=True):
    """Base of every response body."""


class UnsubscribePreview(_Response):
    """What `GET /v1/email/unsubscribe` shows before the one-click POST confirms it."""

    valid: bool
    already_unsubscribed: bool
    confirm_method: Literal["POST"]
    confirm_url: str


class Unsubscribed(_Response):
    unsubscribed: bool
    unsubscribed_at: datetime


class FinanceContactUpdate(_Request):
    """The partner's finance contact, who receives `statement.ready` email."""

    email: EmailText
    locale: LocaleText = LOCALE_DEFAULT


class FinanceContact(_Response):
    partner_id: int
    email: str
    locale: Locale
    updated_at: datetime
    updated_by: str
