"""A partner's earn programme as the routes call it: its earn rules and its campaigns.

A `partner_id` of None names the network (operators' campaigns). The rules live in
`earn_rules` and `campaigns`; this is their door, with the budget's burn-down beside them.
"""

from __future__ import annotations

from datetime import date

from contracts.campaigns import Campaign, CampaignBurnDown, CampaignCreate, CampaignPage, Offer
from contracts.partners import EarnRules, EarnRulesUpdate
from infra.db import Conn
from partners import campaigns, earn_rules
from partners.campaign_burn_down import budget_burn_down


async def earn_rules_of(conn: Conn, partner_id: int) -> EarnRules:
    return await earn_rules.get(conn, partner_id)


async def replace_earn_rules(
    conn: Conn, partner_id: int, req: EarnRulesUpdate, *, actor: str
) -> EarnRules:
    return await earn_rules.replace(conn, partner_id, req, actor=actor)


async def create_campaign(
    conn: Conn, partner_id: int | None, req: CampaignCreate, *, actor: str
) -> Campaign:
    """A partner's campaign, or a network campaign when `partner_id` is None (operators)."""
    return await campaigns.create(conn, partner_id, req, actor=actor)


async def get_campaign(conn: Conn, partner_id: int | None, campaign_id: int) -> Campaign:
    return await campaigns.get(conn, partner_id, campaign_id)


async def end_campaign(conn: Conn, partner_id: int | None, campaign_id: int) -> Campaign:
    return await campaigns.end(conn, partner_id, campaign_id)


async def list_campaigns(
    conn: Conn, partner_id: int | None, *, cursor: str | None, limit: int
) -> CampaignPage:
    return await campaigns.list_page(conn, partner_id, cursor=cursor, limit=limit)


async def campaign_burn_down(
    conn: Conn, partner_id: int | None, campaign_id: int, *, today: date
) -> CampaignBurnDown:
    """The budget left at the end of each UTC day, from the start to min(stop, today)."""
    return await budget_burn_down(conn, campaign_id, partner_id=partner_id, today=today)


async def offers_for_shopper(
    conn: Conn, shopper_id: int, *, partner_id: int | None = None
) -> list[Offer]:
    return await campaigns.offers_for_shopper(conn, shopper_id, partner_id=partner_id)
