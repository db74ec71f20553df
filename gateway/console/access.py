"""Who may open what in the console: the operator API's roles, area by area.

Each set mirrors the guards of the API routes the area calls (gateway/routes/operator_*.py,
keys.py, partners.py), so a role sees and does in the console what its token could do.
"""

from __future__ import annotations

from enum import StrEnum

from gateway.tokens import Role

A, F, S, U = Role.ADMIN, Role.FINANCE, Role.SUPPORT, Role.AUDITOR


class Area(StrEnum):
    DASHBOARD = "dashboard"
    PARTNERS = "partners"
    KEYS = "keys"  # see a partner's API keys
    KEYS_CREATE = "keys_create"
    SETTLEMENTS = "settlements"
    STATEMENT_ACT = "statement_act"  # finalize, mark paid, dispute
    PERIOD_CLOSE = "period_close"
    RECONCILIATIONS = "reconciliations"
    SHOPPERS = "shoppers"
    CAMPAIGNS = "campaigns"
    AUDIT = "audit"
    SECURITY_POLICY = "security_policy"  # make TOTP mandatory per role
    KEYS_REVOKE = "keys_revoke"
    RATE_LIMIT = "rate_limit"  # change a partner's per-key calls per second
    WEBHOOKS = "webhooks"  # see a partner's webhook endpoints and failed deliveries
    WEBHOOK_RETRY = "webhook_retry"
    PARTNER_CREATE = "partner_create"  # onboard a partner
    PRICING = "pricing"  # add a pricing version
    RECONCILIATION_RESOLVE = "reconciliation_resolve"  # explain or adjust a difference


ALLOWED: dict[Area, frozenset[Role]] = {
    Area.DASHBOARD: frozenset({A, F, U}),  # operator_analytics, operator_finance
    Area.PARTNERS: frozenset({A, F, S, U}),  # GET /v1/operator/partners/{id}
    Area.KEYS: frozenset({A, F, U}),  # a support user cannot see keys
    Area.KEYS_CREATE: frozenset({A}),  # POST .../keys
    Area.SETTLEMENTS: frozenset({A, F, U}),  # operator_settlements.READERS
    Area.STATEMENT_ACT: frozenset({F}),  # operator_settlements.WRITERS
    Area.PERIOD_CLOSE: frozenset({A, F}),  # operator_settlements.CLOSERS
    Area.RECONCILIATIONS: frozenset({A, F, U}),
    Area.SHOPPERS: frozenset({A, S}),  # operator_shoppers.GUARDS
    Area.CAMPAIGNS: frozenset({A, F, S, U}),  # GET /v1/operator/campaigns
    Area.AUDIT: frozenset({A, F, U}),
    Area.SECURITY_POLICY: frozenset({A}),
    Area.KEYS_REVOKE: frozenset({A}),  # DELETE .../keys/{key_id}
    Area.RATE_LIMIT: frozenset({A}),  # PUT .../rate-limit
    Area.WEBHOOKS: frozenset({A, F, S, U}),  # operator_webhooks.READERS
    Area.WEBHOOK_RETRY: frozenset({A, S}),  # operator_webhooks.RETRIERS
    Area.PARTNER_CREATE: frozenset({A}),  # POST /v1/operator/partners
    Area.PRICING: frozenset({A}),  # POST .../pricing
    Area.RECONCILIATION_RESOLVE: frozenset({F}),  # operator_settlements.WRITERS: .../resolve
}

# The navigation, in order: (label, path, area).
NAV: tuple[tuple[str, str, Area], ...] = (
    ("Dashboard", "/console", Area.DASHBOARD),
    ("Partners", "/console/partners", Area.PARTNERS),
    ("Settlements", "/console/settlements", Area.SETTLEMENTS),
    ("Reconciliations", "/console/reconciliations", Area.RECONCILIATIONS),
    ("Shoppers", "/console/shoppers", Area.SHOPPERS),
    ("Campaigns", "/console/campaigns", Area.CAMPAIGNS),
    ("Audit log", "/console/audit", Area.AUDIT),
)


def may(role: Role, area: Area) -> bool:
    return role in ALLOWED[area]


def home_of(role: Role) -> str:
    """The first page of the navigation this role may open."""
    for _, path, area in NAV:
        if may(role, area):
            return path
    raise AssertionError(f"role {role} opens no console page")
