"""A partner's earn rules beside its pricing contract's base rate.

- category multipliers on basket lines, in basis points (10_000 = 1.0x); a category without a
  rule earns at the base rate;
- exclusions: lines of an excluded category earn nothing;
- a minimum basket: a purchase below it earns nothing at all (no base, tier or campaign points).

Partners manage their own rules through signed calls; the whole set is replaced at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from contracts.partners import BPS_ONE, CategoryRuleView, EarnRules, EarnRulesUpdate
from infra.db import Conn
from partners import queries
from partners.errors import RulesInvalid


@dataclass(frozen=True)
class Rules:
    """The rules the earn computation applies (see partners/earning.py)."""

    min_basket_minor: int = 0
    multiplier_bps_by_category: Mapping[str, int] = field(default_factory=dict)
    excluded: frozenset[str] = frozenset()

    def line_multiplier_bps(self, category: str) -> int:
        if category in self.excluded:
            return 0
        return self.multiplier_bps_by_category.get(category, BPS_ONE)


async def load(conn: Conn, partner_id: int) -> Rules:
    head = await conn.fetchrow(queries.EARN_RULES, partner_id)
    categories = await conn.fetch(queries.EARN_CATEGORIES, partner_id)
    return Rules(
        min_basket_minor=0 if head is None else head["min_basket_minor"],
        multiplier_bps_by_category={
            row["category"]: row["multiplier_bps"] for row in categories if not row["excluded"]
        },
        excluded=frozenset(row["category"] for row in categories if row["excluded"]),
    )


async def get(conn: Conn, partner_id: int) -> EarnRules:
    head = await conn.fetchrow(queries.EARN_RULES, partner_id)
    categories = await conn.fetch(queries.EARN_CATEGORIES, partner_id)
    return EarnRules(
        partner_id=partner_id,
        min_basket_minor=0 if head is None else head["min_basket_minor"],
        categories=[CategoryRuleView(**dict(row)) for row in categories],
        updated_at=None if head is None else head["updated_at"],
    )


async def replace(conn: Conn, partner_id: int, req: EarnRulesUpdate, *, actor: str) -> EarnRules:
    """Replace the partner's rule set; purchases after the commit use it."""
    names = [rule.category for rule in req.categories]
    if len(set(names)) != len(names):
        raise RulesInvalid("each category appears once in the earn rules")
    await conn.execute(queries.UPSERT_EARN_RULES, partner_id, req.min_basket_minor, actor)
    await conn.execute(queries.DELETE_EARN_CATEGORIES, partner_id)
    if req.categories:
        await conn.execute(
            queries.INSERT_EARN_CATEGORIES,
            partner_id,
            names,
            [rule.multiplier_bps for rule in req.categories],
            [rule.excluded for rule in req.categories],
        )
    return await get(conn, partner_id)
