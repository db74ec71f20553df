"""What every way of writing a purchase writes alike, said once.

A purchase is written in one statement (`purchase_write`: `PURCHASE_WRITE`, then the referral
reward when one may be due), or set-based with others (`purchase_many`: `PURCHASE_WRITE_MANY`).
They write the same ledger metadata and the same event and compare the qualification against
the same tier thresholds: those are here, so the two say them once (with the goodwill reason
and metadata of the network-paid points, which only the single statement writes).
"""

from __future__ import annotations

from typing import Any

from contracts.partners import PurchaseRequest
from shoppers import tiers

PURCHASE_RECORDED = "purchase.recorded"
NETWORK_PAID_REASON = "campaign"  # ledger goodwill reason of a network campaign's points
# The tiers above the base one, in rank order, with their qualification thresholds: a purchase
# whose qualification reaches none of them cannot change the tier (`tiers.upgrade_if_qualified`
# returns at once), else its statement ensures and locks the tier row (migrations 0085, 0093).
assert [tier.rank for tier in tiers.TIERS] == list(range(len(tiers.TIERS))), tiers.TIERS
_UPPER_TIERS = [tier for tier in tiers.TIERS if tier.rank > tiers.BASE_TIER.rank]
UPPER_TIER_NAMES = [tier.name for tier in _UPPER_TIERS]
UPPER_TIERS_POINTS_MIN = [tier.points_earned_min for tier in _UPPER_TIERS]
UPPER_TIERS_SPEND_MIN = [tier.spend_minor_min for tier in _UPPER_TIERS]


def purchase_metadata(req: PurchaseRequest) -> dict[str, Any]:
    return {"partner_ref": req.partner_ref, "amount_minor": req.amount_minor}


def network_paid_metadata(partner_id: int, req: PurchaseRequest) -> dict[str, Any]:
    return {**purchase_metadata(req), "issued_at_partner_id": partner_id}
