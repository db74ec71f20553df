"""Referrals: a shopper's code, the friend who enrolls with it, and both bonuses, paid once.

- Every shopper has one code, created on first request and never changed.
- A friend presents the code at enrollment (`POST /v1/shoppers {referral_code}`). A shopper is
  referred at most once, never by themself, and never by someone they referred, directly or
  down a chain (no loops).
- The friend's first qualifying purchase (the first purchase of at least
  `QUALIFYING_PURCHASE_MINOR`, at any partner) pays both bonuses, from `network:marketing`, at
  the purchasing partner's issue price. Exactly once: the statement that moves `rewarded_at`
  from NULL pays, and concurrent purchases wait on its row lock and then find it set; the
  ledger entries carry idempotency keys derived from the referral as a second guard.
- A refund of the qualifying purchase does not take the bonuses back.
- Erasure (`forget`): the shopper's code is deleted, so it stops working and no longer leads
  to them; referrals that named the shopper as referrer forget it (the friend still gets their
  own bonus, the erased wallet gets none); an unrewarded referral of the shopper is deleted
  (an erased shopper never purchases again). A rewarded referral of the shopper is kept: it is
  the exactly-once record of bonuses the ledger paid, and names only pseudonymous ids.

The SQL of this module lives here, beside it, because `shoppers/queries.py` belongs to the
identity side of the room.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from contracts.errors import DomainError, ErrorCode
from infra import outbox
from infra.db import Conn
from ledger import service as ledger

__all__ = [
    "FRIEND_BONUS_POINTS",
    "QUALIFYING_PURCHASE_MINOR",
    "REFERRER_BONUS_POINTS",
    "ReferralCodeUnknown",
    "ReferralNotAllowed",
    "Reward",
    "code_for",
    "forget",
    "qualifies",
    "register",
    "reward_qualifying_purchase",
]

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread
CODE_LENGTH = 8
CODE_ATTEMPTS_MAX = 8
CHAIN_DEPTH_MAX = 64  # how far up a referral chain the loop check looks
QUALIFYING_PURCHASE_MINOR = 2_000  # 20.00 in a two-decimal currency
FRIEND_BONUS_POINTS = 250
REFERRER_BONUS_POINTS = 500
# One lock for all registrations: two crossing registrations (A takes B's code while B takes
# A's) would otherwise both pass the loop check. Registrations are rare (enrollment only).
REGISTRATION_LOCK_KEY = 0x5245_4645  # "REFE"

CODE_OF = "SELECT code FROM referral_codes WHERE shopper_id = $1"

# DO NOTHING on either key: the shopper already has a code, or the drawn code is taken.
INSERT_CODE = """
INSERT INTO referral_codes (shopper_id, code) VALUES ($1, $2) ON CONFLICT DO NOTHING
RETURNING code
"""

# KEY SHARE until the referral is inserted: an erasure deleting the code waits for it, then
# forgets the referrer in the new referral; or it went first and the code is unknown.
OWNER_OF_CODE = "SELECT shopper_id FROM referral_codes WHERE code = $1 FOR KEY SHARE"

LOCK_REGISTRATIONS = "SELECT pg_advisory_xact_lock($1)"

# Is $2 (the friend) the referrer $1 or an ancestor of $1 (who referred $1, and so on)?
IN_CHAIN = """
WITH RECURSIVE up (shopper_id, depth) AS (
    SELECT $1::bigint, 0
    UNION ALL
    SELECT r.referrer_shopper_id, up.depth + 1
    FROM referrals r JOIN up ON r.referred_shopper_id = up.shopper_id
    WHERE up.depth < $3
)
SELECT EXISTS (SELECT 1 FROM up WHERE shopper_id = $2)
"""

INSERT_REFERRAL = """
INSERT INTO referrals (referred_shopper_id, referrer_shopper_id) VALUES ($1, $2)
ON CONFLICT (referred_shopper_id) DO NOTHING
RETURNING referred_shopper_id
"""

# The exactly-once step: only the first qualifying purchase finds rewarded_at NULL. A NULL
# referrer was erased: the friend is still rewarded, the referrer is not.
MARK_REWARDED = """
UPDATE referrals SET rewarded_at = now(), qualifying_transaction_id = $2
WHERE referred_shopper_id = $1 AND rewarded_at IS NULL
RETURNING referrer_shopper_id
"""

# The erased shopper and the shoppers merged into it (the same person under older ids).
_ERASED_IDS = "(SELECT $1::bigint UNION ALL SELECT id FROM shoppers WHERE merged_into_id = $1)"

DELETE_CODE = f"DELETE FROM referral_codes WHERE shopper_id IN {_ERASED_IDS}"

FORGET_REFERRER = f"""
UPDATE referrals SET referrer_shopper_id = NULL WHERE referrer_shopper_id IN {_ERASED_IDS}
"""

DELETE_UNREWARDED_REFERRAL = f"""
DELETE FROM referrals WHERE referred_shopper_id IN {_ERASED_IDS} AND rewarded_at IS NULL
"""


class ReferralCodeUnknown(DomainError):
    code = ErrorCode.REFERRAL_CODE_UNKNOWN

    def __init__(self) -> None:
        super().__init__("no shopper has this referral code")


class ReferralNotAllowed(DomainError):
    code = ErrorCode.REFERRAL_NOT_ALLOWED

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


@dataclass(frozen=True)
class Reward:
    referrer_shopper_id: int | None  # None: the referrer was erased and gets no bonus
    friend_points: int
    friend_balance_after: int
    referrer_points: int


async def code_for(conn: Conn, shopper_id: int) -> str:
    """The shopper's referral code, created on the first call and the same ever after."""
    existing: str | None = await conn.fetchval(CODE_OF, shopper_id)
    if existing is not None:
        return existing
    for _ in range(CODE_ATTEMPTS_MAX):
        candidate = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        created: str | None = await conn.fetchval(INSERT_CODE, shopper_id, candidate)
        if created is not None:
            return created
        existing = await conn.fetchval(CODE_OF, shopper_id)
        if existing is not None:  # a concurrent first call created it
            return existing
    raise AssertionError("could not draw a free referral code; the code space is exhausted")


async def register(conn: Conn, *, referred_shopper_id: int, code: str) -> int:
    """Record that `code`'s owner referred this shopper; returns the referrer's id."""
    referrer: int | None = await conn.fetchval(OWNER_OF_CODE, code.upper())
    if referrer is None:
        raise ReferralCodeUnknown()
    if referrer == referred_shopper_id:
        raise ReferralNotAllowed("a shopper cannot refer themself")
    await conn.execute(LOCK_REGISTRATIONS, REGISTRATION_LOCK_KEY)
    if await conn.fetchval(IN_CHAIN, referrer, referred_shopper_id, CHAIN_DEPTH_MAX):
        raise ReferralNotAllowed("the code's owner was referred by this shopper (a loop)")
    if await conn.fetchval(INSERT_REFERRAL, referred_shopper_id, referrer) is None:
        raise ReferralNotAllowed("this shopper was already referred")
    return referrer


def qualifies(amount_minor: int) -> bool:
    """Whether a purchase of this amount is one that can pay a referral's bonuses."""
    return amount_minor >= QUALIFYING_PURCHASE_MINOR


async def reward_qualifying_purchase(
    conn: Conn,
    *,
    shopper_id: int,
    amount_minor: int,
    transaction_id: uuid.UUID,
    issue_price_micros: int,
    expires_at: datetime,
) -> Reward | None:
    """Pay both bonuses if this purchase is the referred shopper's first qualifying one.

    Runs in the purchase's transaction, after its earn and its record (the friend's wallet is
    locked first, then the referrer's: referral chains have no loops, so this order cannot
    cycle).
    """
    if not qualifies(amount_minor):
        return None
    marked = await conn.fetchrow(MARK_REWARDED, shopper_id, transaction_id)
    if marked is None:
        return None
    referrer: int | None = marked["referrer_shopper_id"]
    metadata: dict[str, Any] = {"referral": shopper_id, "transaction_id": str(transaction_id)}
    friend = await _bonus(
        conn,
        f"referral:{shopper_id}:friend",
        shopper_id,
        FRIEND_BONUS_POINTS,
        issue_price_micros,
        expires_at,
        metadata,
    )
    referrer_points = 0
    if referrer is not None:
        await _bonus(
            conn,
            f"referral:{shopper_id}:referrer",
            referrer,
            REFERRER_BONUS_POINTS,
            issue_price_micros,
            expires_at,
            metadata,
        )
        referrer_points = REFERRER_BONUS_POINTS
    await outbox.record(
        conn,
        "referral.rewarded",
        shopper_id=shopper_id,
        payload={
            "referred_shopper_id": shopper_id,
            "referrer_shopper_id": referrer,
            "friend_points": FRIEND_BONUS_POINTS,
            "referrer_points": referrer_points,
            "transaction_id": str(transaction_id),
        },
    )
    assert friend.balance_after is not None, friend
    return Reward(
        referrer_shopper_id=referrer,
        friend_points=FRIEND_BONUS_POINTS,
        friend_balance_after=friend.balance_after,
        referrer_points=referrer_points,
    )


async def forget(conn: Conn, shopper_id: int) -> None:
    """Erasure's part: the shopper's code stops working and referrals stop naming them as
    referrer; runs in the erasure's transaction."""
    await conn.execute(DELETE_CODE, shopper_id)
    await conn.execute(FORGET_REFERRER, shopper_id)
    await conn.execute(DELETE_UNREWARDED_REFERRAL, shopper_id)


async def _bonus(
    conn: Conn,
    idempotency_key: str,
    shopper_id: int,
    points: int,
    issue_price_micros: int,
    expires_at: datetime,
    metadata: dict[str, Any],
) -> ledger.EntryResult:
    entry = await ledger.goodwill(
        conn,
        idempotency_key=idempotency_key,
        shopper_id=shopper_id,
        partner_id=None,  # network marketing pays
        points=points,
        issue_price_micros=issue_price_micros,
        expires_at=expires_at,
        reason="referral",
        metadata=metadata,
    )
    # rewarded_at moved from NULL in this transaction: an earlier entry cannot exist.
    assert not entry.replayed, entry
    return entry
