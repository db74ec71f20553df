"""Partner operations: the partners package's door.

Every function takes a connection and runs in the caller's transaction: the gateway opens one
transaction per call, stores the idempotency record in it, and commits once. A domain error
raised here aborts that transaction, so a refused call changes nothing. Purchases and
redemptions record their event (`purchase.recorded`, `redemption.recorded`) in that same
transaction; an operation called without one opens its own (`_common.atomic`).

This module only names what the routes may call; each name lives in the room of its purpose:
`purchase` (the purchase and its quote; behind it `purchase_context`, `purchase_write`,
`purchase_referral`, `purchase_terms`), `batch` (a file of purchases, over `purchase_many`),
`burns` (redeem, hold, capture, void), `refunds`, `transactions` (the partner's reads),
`enrolment` (the shopper at the till), `programme` (earn rules and campaigns) and `onboarding`
(partners, pricing, keys). The rooms never import this door.
"""

from __future__ import annotations

from partners._common import pricing_in_effect
from partners.batch import purchase_batch
from partners.burns import capture_hold, hold, redeem, void_hold
from partners.enrolment import enroll_shopper, shopper_view
from partners.onboarding import (
    ACTIVE_KEYS_MAX,
    PartnerKey,
    add_pricing_version,
    create_api_key,
    create_partner,
    get_partner,
    key_for_signature,
    revoke_api_key,
    set_rate_limit,
)
from partners.programme import (
    campaign_burn_down,
    create_campaign,
    earn_rules_of,
    end_campaign,
    get_campaign,
    list_campaigns,
    offers_for_shopper,
    replace_earn_rules,
)
from partners.purchase import purchase, quote
from partners.refunds import refund
from partners.transactions import get_transaction, list_transactions

__all__ = [
    "ACTIVE_KEYS_MAX",
    "PartnerKey",
    "add_pricing_version",
    "campaign_burn_down",
    "capture_hold",
    "create_api_key",
    "create_campaign",
    "create_partner",
    "earn_rules_of",
    "end_campaign",
    "enroll_shopper",
    "get_campaign",
    "get_partner",
    "get_transaction",
    "hold",
    "key_for_signature",
    "list_campaigns",
    "list_transactions",
    "offers_for_shopper",
    "pricing_in_effect",  # the version purchases are priced with now (the console marks it)
    "purchase",
    "purchase_batch",
    "quote",
    "redeem",
    "refund",
    "replace_earn_rules",
    "revoke_api_key",
    "set_rate_limit",
    "shopper_view",
    "void_hold",
]
