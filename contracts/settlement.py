"""Settlement and reconciliation wire contracts: statements, periods, reconciliation reports,
and the operator's finance views.

Money is integer micro-units of the network currency (`*_micros`) unless named `*_minor`
(the currency's minor unit, as partners send it). Statement amounts are signed as posted to
the partner's settlement account: positive, the partner owes the network.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from contracts.errors import ErrorCode
from contracts.text import LINE_PATTERN, PROSE_PATTERN

__all__ = [
    "RECONCILIATION_FIELDS",
    "ClosePeriodRequest",
    "FinanceOverview",
    "NetworkLine",
    "PartnerFlow",
    "PartnerFlows",
    "Period",
    "PeriodPage",
    "ReconciliationItem",
    "ReconciliationReport",
    "ReconciliationTotals",
    "ResolveRequest",
    "SettlementCycle",
    "SettlementCycleUpdate",
    "SettlementErrorCode",
    "Statement",
    "StatementPage",
    "StatementTransition",
]

STATEMENTS_LIMIT_DEFAULT = 50
STATEMENTS_LIMIT_MAX = 200
PERIODS_LIMIT_DEFAULT = 50
PERIODS_LIMIT_MAX = 200
RECONCILIATION_ITEMS_LIMIT_DEFAULT = 100
RECONCILIATION_ITEMS_LIMIT_MAX = 1_000
REASON_CHARS_MAX = 1_000
TIME_ZONE_CHARS_MAX = 64  # the longest IANA name is 32 characters
ADJUST_POINTS_MAX = 1_000_000_000
PRICE_MICROS_MAX = 1_000_000_000
# The columns of a partner's reconciliation file, CSV header or JSON-lines keys.
RECONCILIATION_FIELDS = (
    "partner_ref",
    "type",
    "card_number",
    "points",
    "amount_minor",
    "occurred_at",
)

Frequency = Literal["daily", "weekly", "monthly"]
StatementState = Literal["draft", "final", "paid", "disputed"]
Payer = Literal["partner", "network", "none"]
Reason = Annotated[
    str, msgspec.Meta(min_length=1, max_length=REASON_CHARS_MAX, pattern=PROSE_PATTERN)
]


class SettlementErrorCode:
    """Stable codes of settlement and reconciliation errors (mapped in gateway/errors.py)."""

    STATEMENT_NOT_FOUND = ErrorCode.NOT_FOUND.value
    PERIOD_END_IN_FUTURE = "period_end_in_future"
    PERIOD_END_BEFORE_LAST = "period_end_before_last"
    STATEMENT_STATE_INVALID = "statement_state_invalid"
    RECONCILIATION_TOO_LARGE = "reconciliation_too_large"
    RECONCILIATION_FORMAT = "reconciliation_format_unsupported"
    RECONCILIATION_HEADER_INVALID = "reconciliation_header_invalid"
    ITEM_ALREADY_RESOLVED = "reconciliation_item_resolved"
    ADJUSTMENT_INVALID = "adjustment_invalid"
    ADJUSTMENT_REFUSED = "adjustment_refused"
    TIME_ZONE_UNKNOWN = "time_zone_unknown"


class _Request(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of every request body: unknown fields are refused, not ignored."""


class _Response(msgspec.Struct, kw_only=True):
    """Base of every response body."""


# ---- statements --------------------------------------------------------------------------------


class Statement(_Response):
    statement_id: int
    period_id: int
    partner_id: int
    currency: str
    period_start: datetime | None
    period_end: datetime
    state: StatementState
    opening_balance_micros: int
    issued_count: int
    issued_points: int
    issued_micros: int
    redeemed_count: int
    redeemed_points: int
    redeemed_micros: int
    refunds_count: int
    refunds_micros: int
    adjustments_count: int
    adjustments_micros: int
    payments_micros: int
    closing_balance_micros: int
    carried_in_micros: int
    # The payment instruction: rounded toward zero to the minor unit; positive: the partner
    # pays the network, negative: the network pays the partner.
    payment_due_micros: int
    carried_out_micros: int
    payer: Payer
    payment_minor: int  # the absolute amount of the instruction, in minor units
    minor_unit_micros: int
    payment_entry_id: int | None
    state_changed_by: str | None
    state_changed_at: datetime | None
    state_reason: str | None
    created_at: datetime
    # Membership fees the partner collected, net of its sales commission, and their refunds
    # (positive: owed to the network); part of the closing balance, not of adjustments.
    membership_count: int = 0
    membership_micros: int = 0


class StatementPage(_Response):
    items: list[Statement]
    next_cursor: str | None


class StatementTransition(_Request):
    reason: Reason | None = None


# ---- cycle -------------------------------------------------------------------------------------


class SettlementCycleUpdate(_Request):
    """When periods end: at local midnight in `time_zone` (an IANA name), every day, every
    Monday or every first of the month."""

    frequency: Frequency
    time_zone: Annotated[
        str, msgspec.Meta(min_length=1, max_length=TIME_ZONE_CHARS_MAX, pattern=LINE_PATTERN)
    ]


class SettlementCycle(_Response):
    frequency: Frequency
    time_zone: str
    updated_at: datetime
    updated_by: str | None
    # The open period under this cycle: it starts at the last closed end (None before the
    # first close) and ends at the next boundary; closed periods are never re-cut.
    next_period_start: datetime | None
    next_period_end: datetime


# ---- periods -----------------------------------------------------------------------------------


class ClosePeriodRequest(_Request):
    period_end: datetime


class NetworkLine(_Response):
    account: str
    amount_micros: int


class Period(_Response):
    period_id: int
    period_start: datetime | None
    period_end: datetime
    currency: str
    minor_unit_micros: int
    closed_by: str
    closed_at: datetime
    created: bool  # false when the close found the period already closed (a no-op)
    statements: list[Statement]
    network_lines: list[NetworkLine]


class PeriodSummary(_Response):
    period_id: int
    period_start: datetime | None
    period_end: datetime
    closed_by: str
    closed_at: datetime
    statements: int


class PeriodPage(_Response):
    items: list[PeriodSummary]
    next_cursor: str | None


# ---- reconciliation ----------------------------------------------------------------------------

ItemStatus = Literal[
    "missing_in_network", "missing_at_partner", "mismatched", "duplicate", "malformed"
]


class ReconciliationTotals(_Response):
    lines_total: int
    matched: int
    missing_in_network: int
    missing_at_partner: int
    mismatched_points: int
    mismatched_amount: int
    mismatched_other: int  # type or card number differs
    duplicates: int
    malformed: int
    partner_points_total: int
    network_points_total: int
    partner_amount_minor_total: int
    network_amount_minor_total: int


class ReconciliationItem(_Response):
    item_no: int
    status: ItemStatus
    line_no: int | None
    partner_ref: str | None
    mismatch: list[str]
    detail: str | None
    partner_type: str | None
    partner_card: str | None
    partner_points: int | None
    partner_amount_minor: int | None
    partner_occurred_at: datetime | None
    network_transaction_id: str | None
    network_type: str | None
    network_card: str | None
    network_points: int | None
    network_amount_minor: int | None
    network_occurred_at: datetime | None
    resolution: Literal["adjusted", "explained"] | None
    resolution_reason: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    adjustment_entry_id: int | None


class ReconciliationReport(_Response):
    reconciliation_id: int
    partner_id: int
    period_start: datetime
    period_end: datetime
    source_format: Literal["csv", "jsonl"]
    created_at: datetime
    totals: ReconciliationTotals
    items: list[ReconciliationItem]
    next_cursor: str | None


class ResolveRequest(_Request):
    """Resolve a difference: `explain` with a reason, or `adjust` with a ledger entry (a
    goodwill credit paid by the partner when points > 0, a debit when points < 0)."""

    action: Literal["adjust", "explain"]
    reason: Reason
    shopper_id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)] | None = None
    points: Annotated[int, msgspec.Meta(ge=-ADJUST_POINTS_MAX, le=ADJUST_POINTS_MAX)] | None = None
    issue_price_micros: Annotated[int, msgspec.Meta(ge=0, le=PRICE_MICROS_MAX)] | None = None


# ---- finance views -----------------------------------------------------------------------------


class FinanceOverview(_Response):
    """Network liability and revenue to date. Revenue figures are positive when earned."""

    currency: str
    outstanding_points: int
    deferred_value_micros: int
    breakage_micros: int
    redemption_margin_micros: int


class PartnerFlow(_Response):
    partner_id: int
    issued_points: int
    issued_micros: int
    redeemed_points: int
    redeemed_micros: int  # reimbursement owed to the partner, positive
    net_micros: int  # issued - redeemed: positive, the partner owes the network


class PartnerFlows(_Response):
    period_start: datetime
    period_end: datetime
    currency: str
    partners: list[PartnerFlow]
