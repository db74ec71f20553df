"""A campaign's budget burn-down: what is left of its points budget at the end of each UTC day.

Awards are dated by the purchase that earned them (`purchase_breakdown`, kind 'campaign') and
budget returns by the refund that gave them back (`campaign_budget_returns`, 0181), both at
`partner_transactions.created_at`. The day's figure is the budget minus every award up to the
end of that day plus every return up to then: the same sum that `campaigns.awarded_points`
keeps, so the last day of a running campaign matches the campaign's own `awarded_points`.
"""

from __future__ import annotations

from datetime import date

from contracts.campaigns import CAMPAIGN_DAYS_MAX, BurnDownDay, CampaignBurnDown
from infra.db import Conn
from partners import queries
from partners.errors import NotFound

__all__ = ["BURN_DOWN_DAYS_MAX", "budget_burn_down"]

# A campaign runs at most CAMPAIGN_DAYS_MAX days, which touch at most one more UTC date.
BURN_DOWN_DAYS_MAX = CAMPAIGN_DAYS_MAX + 1


async def budget_burn_down(
    conn: Conn, campaign_id: int, *, partner_id: int | None, today: date
) -> CampaignBurnDown:
    """Every UTC day from the campaign's start to min(its stop, `today`), oldest first (one
    query); no day before it starts. `partner_id` None addresses the network's campaigns."""
    rows = await conn.fetch(queries.CAMPAIGN_BURN_DOWN, campaign_id, partner_id, today)
    if not rows:
        raise NotFound("campaign")
    head = rows[0]
    # Pair of the write-side rule (0181): awarded_points = awards - returns, over all time.
    assert head["net_awarded"] == head["awarded_points"], (campaign_id, dict(head))
    days = [
        BurnDownDay(
            day=row["day"],
            awarded_points=row["awarded"],
            returned_points=row["returned"],
            budget_left_points=row["left_points"],
        )
        for row in rows
        if row["day"] is not None  # the campaign's row alone: it has not started yet
    ]
    assert len(days) <= BURN_DOWN_DAYS_MAX, (campaign_id, len(days))
    return CampaignBurnDown(
        campaign_id=head["id"],
        budget_points=head["budget_points"],
        starts_at=head["starts_at"],
        stops_at=head["stops_at"],
        days=days,
    )
