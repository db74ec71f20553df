"""A purchase's referral reward: what follows its one statement when a referral may pay.

The purchase is written like every other (`purchase_write`: earn entries, record, lines,
breakdown, qualification, tier row), with its event held back; then this step makes the
referral's own writes only: the bonuses and `referral.rewarded` (`shoppers.referrals`, which
needs the purchase's record: the referral names it), and the reward's breakdown item. The
caller then changes the tier and records `purchase.recorded` with the reward's points, so
every row and its order are those the purchase always wrote (the reward's points are
network-paid goodwill, not `partner_transactions` points: the qualification does not count
them, so it is the same read before or after the reward).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from infra.db import Conn
from partners import earning, queries
from partners._common import Pricing
from shoppers import referrals


@dataclass(frozen=True)
class Rewarded:
    """The purchase's items with the reward's last, and the friend's balance after it."""

    items: list[earning.Item]
    balance: int


async def reward_after_write(
    conn: Conn,
    *,
    transaction_id: uuid.UUID,
    shopper_id: int,
    amount_minor: int,
    pricing: Pricing,
    expires_at: datetime,
    items: list[earning.Item],
) -> Rewarded | None:
    """Pay the referral bonuses if this is the friend's first qualifying purchase, and store
    the reward's item after the purchase's own; None when no reward was due."""
    reward = await referrals.reward_qualifying_purchase(
        conn,
        shopper_id=shopper_id,
        amount_minor=amount_minor,
        transaction_id=transaction_id,
        issue_price_micros=pricing.issue_price_micros,
        expires_at=expires_at,
    )
    if reward is None:
        return None
    item = earning.Item("referral", reward.friend_points, "network")
    await conn.execute(
        queries.APPEND_BREAKDOWN_ITEM,
        transaction_id,
        len(items),
        shopper_id,
        item.kind,
        item.points,
        item.campaign_id,
        item.paid_by,
    )
    return Rewarded(items=[*items, item], balance=reward.friend_balance_after)
