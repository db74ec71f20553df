"""A refund gives back the campaign budget of the campaign points it takes back.

A purchase's campaign points are listed in its breakdown (`purchase_breakdown`, kind
'campaign'), each with its campaign and payer:

- network campaigns are paid by `network:marketing` in the purchase's network entry; a refund
  takes back a cumulative share of them (`refunds._network_refund_share`). That share is
  allotted to the campaigns in ascending id, each filled before the next, so the returns of
  all refunds of a purchase always add up to exactly the network points taken back. Other
  network-paid points of the purchase (a paid membership's bonus, which has no budget) come
  after the campaigns in that order: they take what is taken back beyond the campaigns';
- partner campaigns are part of the partner's earn entry, mixed with the base points; each
  campaign gets back floor(its points x cumulative partner points refunded / purchase points),
  which reaches all its points on the whole refund.

A return lowers `campaigns.awarded_points` and the shopper's `campaign_shopper_awards` row by
the same points, in the refund's transaction, before the refund's ledger calls: the purchase
path takes campaign locks before the wallet's, and so does this (no deadlock). Rows are taken
in ascending campaign id, the order `campaign_award` uses.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from infra.db import Conn

__all__ = ["CampaignItem", "Return", "apply", "due", "items_of", "record"]

CAMPAIGN_ITEMS = """
SELECT campaign_id, paid_by, sum(points)::bigint AS points
FROM purchase_breakdown
WHERE shopper_id = $1 AND transaction_id = $2 AND kind = 'campaign' AND campaign_id IS NOT NULL
GROUP BY campaign_id, paid_by
ORDER BY campaign_id
"""

RETURN_TO_SHOPPER = """
UPDATE campaign_shopper_awards SET points = points - $3
WHERE shopper_id = $1 AND campaign_id = $2
"""

RETURN_TO_CAMPAIGN = "UPDATE campaigns SET awarded_points = awarded_points - $2 WHERE id = $1"

INSERT_RETURN = """
INSERT INTO campaign_budget_returns (refund_id, campaign_id, shopper_id, points)
SELECT $1, c, $2, p FROM unnest($3::bigint[], $4::bigint[]) AS t (c, p)
"""


@dataclass(frozen=True)
class CampaignItem:
    campaign_id: int
    paid_by_network: bool
    points: int


@dataclass(frozen=True)
class Return:
    campaign_id: int
    points: int


async def items_of(conn: Conn, shopper_id: int, transaction_id: uuid.UUID) -> list[CampaignItem]:
    rows = await conn.fetch(CAMPAIGN_ITEMS, shopper_id, transaction_id)
    return [_item(row) for row in rows]


def due(
    items: Sequence[CampaignItem],
    *,
    purchase_points: int,
    partner_before: int,
    partner_after: int,
    network_before: int,
    network_after: int,
) -> list[Return]:
    """What one refund returns per campaign, from the cumulative refunded points before and
    after it (partner-paid points of the purchase, network-paid points of the purchase)."""
    assert 0 <= partner_before <= partner_after, (partner_before, partner_after)
    assert 0 <= network_before <= network_after, (network_before, network_after)
    returns: list[Return] = []
    network_filled = 0
    for item in sorted(items, key=lambda i: i.campaign_id):
        if item.paid_by_network:
            old = _fill(network_before - network_filled, item.points)
            new = _fill(network_after - network_filled, item.points)
            network_filled += item.points
        else:
            old = _share(item.points, partner_before, purchase_points)
            new = _share(item.points, partner_after, purchase_points)
        if new > old:
            returns.append(Return(item.campaign_id, new - old))
    return returns


async def apply(conn: Conn, shopper_id: int, returns: Sequence[Return]) -> None:
    """Lower the budgets used (call before the refund's ledger calls: the lock order)."""
    for r in sorted(returns, key=lambda r: r.campaign_id):
        await conn.execute(RETURN_TO_SHOPPER, shopper_id, r.campaign_id, r.points)
        await conn.execute(RETURN_TO_CAMPAIGN, r.campaign_id, r.points)


async def record(
    conn: Conn, refund_id: uuid.UUID, shopper_id: int, returns: Sequence[Return]
) -> None:
    if not returns:
        return
    await conn.execute(
        INSERT_RETURN,
        refund_id,
        shopper_id,
        [r.campaign_id for r in returns],
        [r.points for r in returns],
    )


def _fill(taken: int, points: int) -> int:
    return max(0, min(points, taken))


def _share(points: int, refunded: int, whole: int) -> int:
    if whole <= 0:
        return 0
    return points * min(refunded, whole) // whole


def _item(row: asyncpg.Record) -> CampaignItem:
    return CampaignItem(row["campaign_id"], row["paid_by"] == "network", row["points"])
