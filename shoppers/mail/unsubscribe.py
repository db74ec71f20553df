"""One-click unsubscribes (RFC 8058): a signed token per shopper, no login.

The token is `<shopper id>.<base64url HMAC-SHA256>` under a key derived (HKDF) from the
network's master key, so only the network can mint one and a token names one shopper only.
It does not expire: an email read a year later must still unsubscribe. Unsubscribing
withdraws the shopper's marketing consent (`shopper_consents.marketing`, the consent every
notice needs) and records when; consenting again (`PUT /v1/me/consent`) subscribes again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from contracts.errors import DomainError, ErrorCode
from infra.db import Conn

__all__ = ["UnsubscribeTokenInvalid", "Unsubscribes", "apply", "is_unsubscribed"]

KEY_BYTES = 32
KEY_INFO = b"coalition/email-unsubscribe/v1"
MESSAGE_PREFIX = b"unsubscribe:v1:"
UNSUBSCRIBE_PATH = "/v1/email/unsubscribe"  # RFC 8058's one-click POST (List-Unsubscribe)
PAGE_PATH = "/card/unsubscribe"  # the page a person clicking the link in the body sees
_TOKEN = re.compile(r"([1-9][0-9]{0,18})\.([A-Za-z0-9_-]{43})")

# Withdraw marketing consent (the row is created if the shopper never gave any) and record it.
UNSUBSCRIBE = """
WITH shopper AS (
    SELECT id FROM shoppers WHERE id = $1 AND erased_at IS NULL
), consent AS (
    INSERT INTO shopper_consents (shopper_id, data_sharing, marketing, updated_at)
    SELECT id, false, false, $2 FROM shopper
    ON CONFLICT (shopper_id) DO UPDATE SET marketing = false, updated_at = $2
    RETURNING shopper_id
)
INSERT INTO mail.unsubscribe (shopper_id, unsubscribed_at)
SELECT shopper_id, $2 FROM consent
RETURNING unsubscribed_at
"""

IS_UNSUBSCRIBED = """
SELECT NOT coalesce((SELECT marketing FROM shopper_consents WHERE shopper_id = $1), false)
   AND EXISTS (SELECT 1 FROM mail.unsubscribe WHERE shopper_id = $1)
"""


class UnsubscribeTokenInvalid(DomainError):
    code = ErrorCode.UNSUBSCRIBE_TOKEN_INVALID

    def __init__(self) -> None:
        super().__init__("the unsubscribe link is not valid")


@dataclass(frozen=True)
class Unsubscribes:
    """Mints and checks tokens, and builds the one-click URL under `base_url`."""

    key: bytes
    base_url: str  # e.g. https://loyalty.example (no trailing slash)

    @classmethod
    def from_master_key(cls, master_key: bytes, base_url: str) -> Unsubscribes:
        assert len(master_key) == KEY_BYTES, "the master key is 32 bytes"
        key = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=KEY_INFO).derive(
            master_key
        )
        return cls(key=key, base_url=base_url.rstrip("/"))

    def token(self, shopper_id: int) -> str:
        return f"{shopper_id}.{self._mac(shopper_id)}"

    def url(self, shopper_id: int) -> str:
        return f"{self.base_url}{UNSUBSCRIBE_PATH}?token={quote(self.token(shopper_id))}"

    def page_url(self, shopper_id: int) -> str:
        return f"{self.base_url}{PAGE_PATH}?token={quote(self.token(shopper_id))}"

    def shopper_of(self, token: str) -> int:
        """The shopper a genuine token names, or UnsubscribeTokenInvalid."""
        match = _TOKEN.fullmatch(token)
        if match is None:
            raise UnsubscribeTokenInvalid()
        shopper_id = int(match.group(1))
        if shopper_id >= 2**63 or not hmac.compare_digest(self._mac(shopper_id), match.group(2)):
            raise UnsubscribeTokenInvalid()
        return shopper_id

    def _mac(self, shopper_id: int) -> str:
        digest = hmac.new(self.key, MESSAGE_PREFIX + str(shopper_id).encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()

    def __repr__(self) -> str:  # never show key material
        return f"Unsubscribes(***, {self.base_url})"


async def apply(conn: Conn, shopper_id: int, *, now: datetime) -> datetime:
    """Unsubscribe the shopper (again is fine); an erased shopper has nothing left to stop."""
    unsubscribed_at: datetime | None = await conn.fetchval(UNSUBSCRIBE, shopper_id, now)
    return now if unsubscribed_at is None else unsubscribed_at


async def is_unsubscribed(conn: Conn, shopper_id: int) -> bool:
    """Unsubscribed by a link and not consented since."""
    value: bool = await conn.fetchval(IS_UNSUBSCRIBED, shopper_id)
    return value
