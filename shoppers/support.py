"""Shopper support for the operator console: find a shopper, read everything about them, and
give a goodwill credit. The card and merge actions are `shoppers.identity`'s, as the operator
API calls them; erasure is `shoppers.erasure.erase`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from contracts.errors import DomainError, ErrorCode
from contracts.shoppers import Card, HistoryItem
from infra.db import Conn
from ledger import holdings
from ledger import service as ledger
from shoppers import account, identity, tiers
from shoppers.expiry import earned_points_expire_at
from shoppers.identity import PhoneHasher
from shoppers.service import holder_of

HISTORY_SHOWN = 50
GOODWILL_POINTS_MAX = 10_000  # a support credit is compensation, not a campaign
GOODWILL_REASON_CHARS_MAX = 200
# Marketing funds a goodwill point; it carries no partner's issue price (nobody sold it).
GOODWILL_ISSUE_PRICE_MICROS = 0


_CARD_OWNER = "SELECT shopper_id FROM shopper_cards WHERE card_number = $1"


class GoodwillInvalid(DomainError):
    code = ErrorCode.VALIDATION_FAILED


@dataclass(frozen=True)
class Overview:
    shopper_id: int
    balance: int
    held: int
    tier: str
    cards: list[Card]
    lots: list[holdings.Lot]
    holds: list[holdings.Hold]
    history: list[HistoryItem]


def looks_like_phone(text: str) -> bool:
    return text.startswith(("+", "00"))


async def find(conn: Conn, hasher: PhoneHasher, text: str) -> int:
    """The live shopper a card number (of any status) or a phone number names."""
    if looks_like_phone(text):
        return await account.live_shopper_id(conn, await identity.resolve_phone(conn, hasher, text))
    row = await conn.fetchrow(_CARD_OWNER, text)
    if row is None:
        holder_of(text, None, None)  # raises CardUnknown, as the API says it
    assert row is not None
    return await account.live_shopper_id(conn, int(row["shopper_id"]))


async def overview(conn: Conn, shopper_id: int, *, now: datetime) -> Overview:
    shopper_id = await account.live_shopper_id(conn, shopper_id)
    wallet = await ledger.wallet_summary(conn, shopper_id=shopper_id, now=now)
    history = await account.history(conn, shopper_id, cursor=None, limit=HISTORY_SHOWN)
    return Overview(
        shopper_id=shopper_id,
        balance=wallet.balance,
        held=wallet.held,
        tier=(await tiers.tier_of(conn, shopper_id)).name,
        cards=await identity.cards_of(conn, shopper_id),
        lots=await holdings.lots(conn, shopper_id),
        holds=await holdings.open_holds(conn, shopper_id),
        history=history.items,
    )


def check_goodwill(points: int, reason: str) -> None:
    if not 1 <= points <= GOODWILL_POINTS_MAX:
        raise GoodwillInvalid(f"a goodwill credit is 1 to {GOODWILL_POINTS_MAX} points")
    if not reason.strip() or len(reason) > GOODWILL_REASON_CHARS_MAX:
        raise GoodwillInvalid(f"a reason of 1 to {GOODWILL_REASON_CHARS_MAX} chars is required")


async def goodwill(
    conn: Conn,
    shopper_id: int,
    *,
    points: int,
    reason: str,
    operator: str,
    request_id: str,
    now: datetime,
) -> ledger.EntryResult:
    """Credit `points` funded by the network's marketing account (partner None). The
    `request_id` (the confirmation form's) makes a resubmitted form credit once."""
    check_goodwill(points, reason)
    shopper_id = await account.live_shopper_id(conn, shopper_id)
    return await ledger.goodwill(
        conn,
        idempotency_key=f"console-goodwill:{request_id}",
        shopper_id=shopper_id,
        partner_id=None,
        points=points,
        issue_price_micros=GOODWILL_ISSUE_PRICE_MICROS,
        expires_at=_end_of_day(await earned_points_expire_at(conn, earned_at=now)),
        reason=reason.strip(),
        metadata={"operator": operator},
    )


def _end_of_day(moment: datetime) -> datetime:
    # The ledger compares a replay's arguments: a resubmitted form the same day must match.
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + timedelta(days=1)
