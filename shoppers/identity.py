"""A shopper's identifiers: cards (with their states), a keyed phone hash, app QR tokens; lost
card replacement and the merge of two shoppers found to be one person.

Points belong to the shopper, not to a card: replacing a card keeps the shopper id and its
ledger wallet, so the balance and every lot carry over untouched. A merge moves the absorbed
shopper's lots to the survivor through the ledger (`transfer_all`, which keeps each lot's
expiry) and its identifiers with them, and folds its aggregated shopper data into the
survivor's.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime

import asyncpg
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from contracts.shoppers import Card, CardReplaced, Merge
from infra import outbox
from infra.db import Conn
from ledger import service as ledger
from ledger.errors import LedgerError
from shoppers import aggregates, luhn, queries, tiers
from shoppers.errors import (
    CardNotBlocked,
    CardNumberInvalid,
    CardNumberTaken,
    CardUnknown,
    IdentifierTaken,
    MergeRefused,
    PhoneInvalid,
    ShopperErased,
    ShopperLedgerRefused,
    ShopperNotFound,
)
from shoppers.mail import contacts
from shoppers.service import CARD_ISSUE_ATTEMPTS_MAX, new_card_number

__all__ = [
    "PhoneHasher",
    "block_card",
    "cards_of",
    "issue_qr_token",
    "link_phone",
    "merge_shoppers",
    "normalize_phone",
    "replace_card",
    "resolve_phone",
    "resolve_qr_token",
    "unblock_card",
]

PHONE_KEY_INFO = b"coalition/shopper-phone-hmac/v1"
PHONE_KEY_BYTES = 32
# E.164: a plus, a country code that does not start with 0, at most 15 digits in all.
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_PHONE_SEPARATORS = re.compile(r"[\s().-]")
QR_TOKEN_BYTES = 24
QR_TOKEN_PREFIX = "qr_"  # noqa: S105 (a prefix, not a secret)
IDENTIFIER_PHONE = "phone"
IDENTIFIER_QR = "qr"


class PhoneHasher:
    """HMAC-SHA256 of normalized phone numbers under a key derived from the master key.

    A keyed hash, not a plain one: phone numbers are few enough to enumerate, so an unkeyed
    digest would be as good as the number to anyone holding a copy of the database.
    """

    def __init__(self, master_key: bytes) -> None:
        assert len(master_key) == PHONE_KEY_BYTES, "the master key is 32 bytes"
        self._key = HKDF(
            algorithm=hashes.SHA256(), length=PHONE_KEY_BYTES, salt=None, info=PHONE_KEY_INFO
        ).derive(master_key)

    def digest(self, phone: str) -> bytes:
        return hmac.new(self._key, normalize_phone(phone).encode(), hashlib.sha256).digest()

    def __repr__(self) -> str:  # never show key material
        return "PhoneHasher(***)"


def normalize_phone(phone: str) -> str:
    normalized = _PHONE_SEPARATORS.sub("", phone)
    if normalized.startswith("00"):
        normalized = "+" + normalized[2:]
    if not _E164.match(normalized):
        raise PhoneInvalid()
    return normalized


def _qr_digest(token: str) -> bytes:
    # QR tokens are 192 random bits: a plain SHA-256 cannot be reversed by enumeration.
    return hashlib.sha256(token.encode()).digest()


# ---- identifiers -----------------------------------------------------------------------------


async def link_phone(conn: Conn, hasher: PhoneHasher, shopper_id: int, phone: str) -> None:
    """Set the shopper's phone (replacing any earlier one); only its keyed hash is stored."""
    digest = hasher.digest(phone)
    await _live_shopper(conn, shopper_id, lock=True)
    await conn.execute(queries.DELETE_IDENTIFIERS_OF_KIND, shopper_id, IDENTIFIER_PHONE)
    if await conn.fetchval(queries.INSERT_IDENTIFIER, IDENTIFIER_PHONE, digest, shopper_id) is None:
        raise IdentifierTaken("phone number")


async def resolve_phone(conn: Conn, hasher: PhoneHasher, phone: str) -> int:
    return await _resolve_identifier(conn, IDENTIFIER_PHONE, hasher.digest(phone))


async def issue_qr_token(conn: Conn, shopper_id: int) -> str:
    """A new app QR token for the shopper; earlier ones stop working."""
    await _live_shopper(conn, shopper_id, lock=True)
    token = QR_TOKEN_PREFIX + secrets.token_urlsafe(QR_TOKEN_BYTES)
    await conn.execute(queries.DELETE_IDENTIFIERS_OF_KIND, shopper_id, IDENTIFIER_QR)
    inserted = await conn.fetchval(
        queries.INSERT_IDENTIFIER, IDENTIFIER_QR, _qr_digest(token), shopper_id
    )
    assert inserted == shopper_id, "a fresh 192-bit token collided"
    return token


async def resolve_qr_token(conn: Conn, token: str) -> int:
    return await _resolve_identifier(conn, IDENTIFIER_QR, _qr_digest(token))


async def _resolve_identifier(conn: Conn, kind: str, digest: bytes) -> int:
    row = await conn.fetchrow(queries.SHOPPER_BY_IDENTIFIER, kind, digest)
    if row is None:
        raise ShopperNotFound()
    if row["erased_at"] is not None:
        raise ShopperErased()
    return int(row["shopper_id"])


# ---- cards -----------------------------------------------------------------------------------


async def block_card(conn: Conn, card_number: str, *, reason: str, operator: str) -> Card:
    """Block a card: every partner operation refuses it until it is unblocked."""
    row = await _card_for_update(conn, card_number)
    if row["status"] == "replaced":
        raise CardNotBlocked("replaced")
    if row["status"] == "blocked":
        return _card(row)  # already blocked: the first reason stands
    updated = await conn.fetchrow(queries.SET_CARD_STATUS, card_number, "blocked", reason, None)
    await _card_event(conn, "card.blocked", row["shopper_id"], card_number, reason, operator)
    return _card(updated)


async def unblock_card(conn: Conn, card_number: str, *, reason: str, operator: str) -> Card:
    row = await _card_for_update(conn, card_number)
    if row["erased_at"] is not None:
        raise ShopperErased()
    if row["status"] != "blocked":
        raise CardNotBlocked(row["status"])
    updated = await conn.fetchrow(queries.SET_CARD_STATUS, card_number, "active", reason, None)
    await _card_event(conn, "card.unblocked", row["shopper_id"], card_number, reason, operator)
    return _card(updated)


async def replace_card(
    conn: Conn,
    card_number: str,
    *,
    new_card_number: str | None,
    reason: str,
    operator: str,
) -> CardReplaced:
    """A lost card's replacement: same shopper, same wallet, so the balance carries over; the
    old card is refused from now on and names its successor."""
    row = await _card_for_update(conn, card_number)
    if row["erased_at"] is not None:
        raise ShopperErased()
    if row["status"] == "replaced":
        raise CardNotBlocked("replaced")
    shopper_id = int(row["shopper_id"])
    new = await _issue_card(conn, shopper_id, new_card_number)
    old = await conn.fetchrow(
        queries.SET_CARD_STATUS, card_number, "replaced", reason, new.card_number
    )
    await outbox.record(
        conn,
        "card.replaced",
        shopper_id=shopper_id,
        payload={
            "shopper_id": shopper_id,
            "old_card_number": card_number,
            "new_card_number": new.card_number,
            "reason": reason,
            "operator": operator,
        },
    )
    return CardReplaced(shopper_id=shopper_id, old_card=_card(old), new_card=new)


async def cards_of(conn: Conn, shopper_id: int) -> list[Card]:
    return [_card(row) for row in await conn.fetch(queries.CARDS_OF, shopper_id)]


async def _issue_card(conn: Conn, shopper_id: int, card_number: str | None) -> Card:
    if card_number is not None:
        if not luhn.is_valid(card_number):
            raise CardNumberInvalid()
        row = await conn.fetchrow(queries.INSERT_CARD_FULL, card_number, shopper_id, "network")
        if row is None:
            raise CardNumberTaken()
        return _card(row)
    for _ in range(CARD_ISSUE_ATTEMPTS_MAX):
        row = await conn.fetchrow(
            queries.INSERT_CARD_FULL, new_card_number(), shopper_id, "network"
        )
        if row is not None:
            return _card(row)
    raise AssertionError("could not draw a free card number; the number space is exhausted")


async def _card_for_update(conn: Conn, card_number: str) -> asyncpg.Record:
    row = await conn.fetchrow(queries.CARD_FOR_UPDATE, card_number)
    if row is None:
        raise CardUnknown()
    return row


async def _card_event(
    conn: Conn, event_type: str, shopper_id: int, card_number: str, reason: str, operator: str
) -> None:
    await outbox.record(
        conn,
        event_type,
        shopper_id=shopper_id,
        payload={
            "shopper_id": shopper_id,
            "card_number": card_number,
            "reason": reason,
            "operator": operator,
        },
    )


def _card(row: asyncpg.Record | None) -> Card:
    assert row is not None, "the card row was locked before the update"
    return Card(
        card_number=row["card_number"],
        status=row["status"],
        created_at=row["created_at"],
        replaced_by=row["replaced_by"],
    )


# ---- merge -----------------------------------------------------------------------------------


async def merge_shoppers(
    conn: Conn,
    *,
    survivor_id: int,
    absorbed_id: int,
    reason: str,
    operator: str,
    now: datetime,
) -> Merge:
    """Two shoppers found to be one person: the survivor takes the absorbed one's lots (with
    their expiry, through the ledger), cards, phone, QR tokens, consent, the better tier, and
    its aggregated data (folded into the survivor's; its scores and segments are dropped and
    the survivor's are recomputed at the next refresh).

    Refused while the absorbed shopper has open holds (the ledger's `holds_open`)."""
    if survivor_id == absorbed_id:
        raise MergeRefused("a shopper cannot absorb itself")
    await _lock_mergeable(conn, survivor_id=survivor_id, absorbed_id=absorbed_id)
    entry = await _transfer_wallet(
        conn, survivor_id=survivor_id, absorbed_id=absorbed_id, reason=reason, operator=operator
    )
    cards = await _move_identity(conn, survivor_id=survivor_id, absorbed_id=absorbed_id)
    await aggregates.merge_shopper(conn, absorbed_id=absorbed_id, survivor_id=survivor_id)
    tier = await tiers.adopt_better_tier(
        conn, survivor_id=survivor_id, absorbed_id=absorbed_id, now=now
    )
    merge = Merge(
        survivor_shopper_id=survivor_id,
        absorbed_shopper_id=absorbed_id,
        points_moved=entry.points or 0,
        lots_moved=entry.lots_moved or 0,
        cards_moved=cards,
        tier=tier,
    )
    await _record_merged(conn, merge, reason=reason, operator=operator)
    return merge


async def _lock_mergeable(conn: Conn, *, survivor_id: int, absorbed_id: int) -> None:
    """Lock both shoppers; refuse unless both exist, neither was erased nor already merged."""
    rows = {
        row["id"]: row
        for row in await conn.fetch(queries.SHOPPERS_FOR_UPDATE, [survivor_id, absorbed_id])
    }
    for shopper_id in (survivor_id, absorbed_id):
        row = rows.get(shopper_id)
        if row is None:
            raise ShopperNotFound()
        if row["erased_at"] is not None:
            raise MergeRefused(f"shopper {shopper_id} was erased")
        if row["merged_into_id"] is not None:
            raise MergeRefused(f"shopper {shopper_id} was already merged")


async def _transfer_wallet(
    conn: Conn, *, survivor_id: int, absorbed_id: int, reason: str, operator: str
) -> ledger.EntryResult:
    """The absorbed shopper's lots, with their expiry, through the ledger."""
    try:
        return await ledger.transfer_all(
            _raw(conn),
            idempotency_key=f"shopper-merge:{absorbed_id}:{survivor_id}",
            from_shopper_id=absorbed_id,
            to_shopper_id=survivor_id,
            metadata={"reason": reason, "operator": operator},
        )
    except LedgerError as exc:
        raise ShopperLedgerRefused(exc.code, str(exc)) from exc


async def _move_identity(conn: Conn, *, survivor_id: int, absorbed_id: int) -> list[str]:
    """Cards, phone, QR tokens and consent go to the survivor; the absorbed one is marked
    merged. The card numbers moved."""
    cards = [
        row["card_number"] for row in await conn.fetch(queries.MOVE_CARDS, absorbed_id, survivor_id)
    ]
    await conn.execute(queries.MOVE_IDENTIFIERS, absorbed_id, survivor_id)
    await conn.execute(queries.MOVE_CONSENT, absorbed_id, survivor_id)
    await contacts.move_on_merge(conn, absorbed_id=absorbed_id, survivor_id=survivor_id)
    await conn.execute(queries.MARK_MERGED, absorbed_id, survivor_id)
    return cards


async def _record_merged(conn: Conn, merge: Merge, *, reason: str, operator: str) -> None:
    await outbox.record(
        conn,
        "shopper.merged",
        shopper_id=merge.survivor_shopper_id,
        payload={
            "survivor_shopper_id": merge.survivor_shopper_id,
            "absorbed_shopper_id": merge.absorbed_shopper_id,
            "points_moved": merge.points_moved,
            "lots_moved": merge.lots_moved,
            "cards_moved": merge.cards_moved,
            "reason": reason,
            "operator": operator,
        },
    )


async def _live_shopper(conn: Conn, shopper_id: int, *, lock: bool = False) -> asyncpg.Record:
    row = await conn.fetchrow(queries.SHOPPER_FOR_UPDATE if lock else queries.SHOPPER, shopper_id)
    if row is None:
        raise ShopperNotFound()
    if row["erased_at"] is not None:
        raise ShopperErased()
    return row


def _raw(conn: Conn) -> asyncpg.Connection:
    return conn  # type: ignore[return-value]  # a pool proxy forwards every call
