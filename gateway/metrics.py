"""Application metrics beyond the per-route request metrics of the Prometheus plugin.

All live in the default registry that `GET /metrics` exposes. Label values are bounded:
error codes are a closed set, partners are a few hundred at most.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# Observed where the ledger is called (partners/), re-exported so all metrics are listed here.
from partners.telemetry import LEDGER_OPERATION_SECONDS
from partners.webhooks.telemetry import (
    WEBHOOK_DELIVERIES,
    WEBHOOK_DELIVERY_LAG_SECONDS,
    WEBHOOK_ENDPOINTS_DISABLED,
    WEBHOOK_QUEUE_DEPTH,
)
from shoppers.mail.telemetry import EMAILS

__all__ = [
    "BATCH_ITEMS",
    "EMAILS",
    "GROUP_COMMIT_ALONE",
    "GROUP_COMMIT_CALLS",
    "GROUP_COMMIT_REFUSED",
    "GROUP_COMMIT_TOGETHER",
    "GROUP_COMMIT_TOGETHER_FAILED",
    "IDEMPOTENT_REPLAYS",
    "LEDGER_OPERATION_SECONDS",
    "POINTS_EARNED",
    "POINTS_REDEEMED",
    "RATE_LIMITED",
    "SIGNATURE_FAILURES",
    "WEBHOOK_DELIVERIES",
    "WEBHOOK_DELIVERY_LAG_SECONDS",
    "WEBHOOK_ENDPOINTS_DISABLED",
    "WEBHOOK_QUEUE_DEPTH",
]

SIGNATURE_FAILURES = Counter(
    "coalition_signature_failures",
    "Partner calls refused by signature verification, by error code",
    ["code"],
)
POINTS_EARNED = Counter(
    "coalition_points_earned", "Points earned on purchases, by partner slug", ["partner"]
)
POINTS_REDEEMED = Counter(
    "coalition_points_redeemed",
    "Points redeemed (redemptions and captured holds), by partner slug",
    ["partner"],
)
RATE_LIMITED = Counter(
    "coalition_rate_limited", "Partner calls refused by the per-key rate limit", ["partner"]
)
IDEMPOTENT_REPLAYS = Counter(
    "coalition_idempotent_replays", "Stored responses replayed for a repeated Idempotency-Key"
)
BATCH_ITEMS = Counter(
    "coalition_batch_items",
    "Purchase batch items answered by committed batch calls, by outcome",
    ["status"],
)
GROUP_COMMIT_CALLS = Histogram(
    "coalition_group_commit_calls",
    "Partner calls committed together in one transaction (gateway/group_commit.py)",
    buckets=(1, 2, 4, 8, 16, 32),
)
GROUP_COMMIT_ALONE = Counter(
    "coalition_group_commit_alone",
    "Calls run again in a transaction of their own (a neighbour's lock, or a refused commit)",
)
GROUP_COMMIT_REFUSED = Counter(
    "coalition_group_commit_refused", "Group transactions the server refused (none committed)"
)
GROUP_COMMIT_TOGETHER = Counter(
    "coalition_group_commit_together",
    "Calls answered by a set-based step of their group (e.g. purchases written together)",
)
GROUP_COMMIT_TOGETHER_FAILED = Counter(
    "coalition_group_commit_together_failed",
    "Set-based steps that raised and were rolled back (their calls then ran one by one)",
)
