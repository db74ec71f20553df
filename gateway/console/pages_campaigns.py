"""A network campaign's page (/console/campaigns/{id}): its facts and its budget burn-down, a
Chart.js line with the same figures as a table (the page works without JavaScript), read
through `partners.operations` as GET /v1/operator/campaigns/{id}[/burn-down] are."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from litestar import Request, get
from litestar.response import Template

from contracts.campaigns import Campaign, CampaignBurnDown
from contracts.partners import BPS_ONE
from gateway.console.access import Area
from gateway.console.web import page, require
from gateway.routes._common import PathId, in_transaction
from infra.db import Conn
from partners import operations

NETWORK = None  # the partner id of network campaigns, as in routes/operator_campaigns.py


@dataclass(frozen=True)
class Row:
    day: date
    awarded_points: int
    returned_points: int
    budget_left_points: int
    ideal_left_points: int  # the straight line from the whole budget at start to 0 at the end


def ideal_left_points(campaign: Campaign, day: date) -> int:
    """What would be left at the end of `day` if the budget were spent evenly over the planned
    window [starts_at, ends_at): floor, in integers, never below 0 or above the budget."""
    end_of_day = datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)
    whole_s = int((campaign.ends_at - campaign.starts_at).total_seconds())
    still_s = int((campaign.ends_at - end_of_day).total_seconds())
    assert whole_s > 0, campaign.id  # the database's CHECK (ends_at > starts_at)
    return campaign.budget_points * min(max(still_s, 0), whole_s) // whole_s


def reward_text(campaign: Campaign) -> str:
    reward = campaign.reward
    if reward.bonus_points is not None:
        return f"{reward.bonus_points:,} bonus points"
    assert reward.multiplier_bps is not None, campaign.id  # exactly one reward (a CHECK)
    whole, rest = divmod(reward.multiplier_bps, BPS_ONE)
    return f"{whole}.{rest:04d}".rstrip("0").rstrip(".") + "x the eligible base points"


def conditions_text(campaign: Campaign) -> str:
    """Every condition that must hold, in words; "none" when the campaign has none."""
    k = campaign.conditions
    parts = [
        f"segment {k.segment}" if k.segment else "",
        f"tier {k.tier} or above" if k.tier else "",
        f"category {k.category}" if k.category else "",
        f"basket of at least {k.basket_min_minor:,} (minor units)"
        if k.basket_min_minor is not None
        else "",
        "the shopper's first purchase" if k.first_purchase else "",
        "in the shopper's birthday month" if k.birthday_month else "",
        "on ISO weekdays " + ", ".join(map(str, k.days_of_week)) if k.days_of_week else "",
    ]
    return "; ".join(p for p in parts if p) or "none"


def rows_of(campaign: Campaign, burn_down: CampaignBurnDown) -> list[Row]:
    return [
        Row(
            day=d.day,
            awarded_points=d.awarded_points,
            returned_points=d.returned_points,
            budget_left_points=d.budget_left_points,
            ideal_left_points=ideal_left_points(campaign, d.day),
        )
        for d in burn_down.days
    ]


@get("/console/campaigns/{campaign_id:int}")
async def campaign(request: Request[Any, Any, Any], campaign_id: PathId) -> Template:
    require(request, Area.CAMPAIGNS)
    today = datetime.now(UTC).date()

    async def read(conn: Conn) -> tuple[Campaign, CampaignBurnDown]:
        found = await operations.get_campaign(conn, NETWORK, campaign_id)
        burn = await operations.campaign_burn_down(conn, NETWORK, campaign_id, today=today)
        return found, burn

    found, burn = await in_transaction(request, read)
    rows = rows_of(found, burn)
    chart = {
        "labels": [r.day.isoformat() for r in rows],
        "left": [r.budget_left_points for r in rows],
        "ideal": [r.ideal_left_points for r in rows],
    }
    return page(
        request,
        "campaign.html",
        title=found.name,
        active="Campaigns",
        c=found,
        reward=reward_text(found),
        conditions=conditions_text(found),
        burn=burn,
        rows=rows,
        now=datetime.now(UTC),
        chart_json=json.dumps(chart),
    )


ROUTES = [campaign]
