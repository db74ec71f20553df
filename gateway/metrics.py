"""Application metrics beyond the per-route request metrics of the Prometheus plugin.

All live in the default registry that `GET /metrics` exposes. Label values are bounded:
error codes are a closed set, partners are a few hundred at most.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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

# Operations metrics (docs/deploy.md): sampled from the database by the `ops.sample_metrics`
# job (gateway/ops_metrics.py) and counted around every periodic job (gateway/workers.py).
# With `serve --workers N` every worker samples (gateway/metrics_processes.py), so each gauge
# says how the workers' values merge: `mostrecent` for a figure read from the database (the
# latest sample of any worker, never N times it), `max` for timestamps and monotonic figures,
# `livesum` for what each live worker holds (its pool), `livemin`/`livemax` for a worker's own
# view of its read replica (alert on the worst one).
PROBLEMS = Counter(
    "coalition_problems",
    "Problem responses by stable error code and route template",
    ["code", "route"],
)
JOB_RUNS = Counter(
    "coalition_job_runs",
    "Periodic job runs, by job and outcome (ok, failed)",
    ["worker", "outcome"],
)
# The label is `worker`, not `job`: Prometheus' own target label is called job.
JOB_ITEMS = Counter("coalition_job_items", "Items processed by periodic jobs", ["worker"])
JOB_LAST_SUCCESS = Gauge(
    "coalition_job_last_success_timestamp_seconds",
    "Unix time of the job's last run that did not fail",
    ["worker"],
    multiprocess_mode="max",
)
OUTBOX_UNDELIVERED = Gauge(
    "coalition_outbox_undelivered",
    "Outbox events waiting for the webhook fan-out (webhooks.fanout_queue)",
    multiprocess_mode="mostrecent",
)
OUTBOX_OLDEST_AGE_SECONDS = Gauge(
    "coalition_outbox_oldest_undelivered_age_seconds",
    "Age of the oldest outbox event waiting for the webhook fan-out (0 when none)",
    multiprocess_mode="mostrecent",
)
LEDGER_POSTINGS_WRITTEN = Gauge(
    "coalition_ledger_postings_written",
    "Highest posting id written (monotonic: rate() gives postings per second)",
    multiprocess_mode="max",
)
SETTLEMENT_LAST_PERIOD_END = Gauge(
    "coalition_settlement_last_period_end_timestamp_seconds",
    "Unix time of the end of the last closed settlement period (0: none closed yet)",
    multiprocess_mode="max",
)
VERIFY_LAST_PROBLEMS = Gauge(
    "coalition_verify_last_problems",
    "Problems found by the last `coalition verify` (0: every invariant held)",
    multiprocess_mode="mostrecent",
)
VERIFY_LAST_RUN = Gauge(
    "coalition_verify_last_run_timestamp_seconds",
    "Unix time the last `coalition verify` finished (0: never)",
    multiprocess_mode="max",
)
REPLICA_LAG_SECONDS = Gauge(
    "coalition_replica_lag_seconds",
    "Replay lag of the streaming replicas, the largest one (0: none, or caught up)",
    multiprocess_mode="mostrecent",
)
REPLICAS_STREAMING = Gauge(
    "coalition_replicas_streaming",
    "Streaming replicas connected to the primary",
    multiprocess_mode="mostrecent",
)
DB_POOL_SIZE = Gauge(
    "coalition_db_pool_size", "Connections open in the primary pool", multiprocess_mode="livesum"
)
DB_POOL_IDLE = Gauge(
    "coalition_db_pool_idle", "Idle connections in the primary pool", multiprocess_mode="livesum"
)
DB_POOL_MAX = Gauge(
    "coalition_db_pool_max", "Largest size of the primary pool", multiprocess_mode="livesum"
)
READ_REPLICA_LAG_SECONDS = Gauge(
    "coalition_read_replica_lag_seconds",
    "Lag of the replica this process reads from, measured against the primary (-1: unreachable)",
    multiprocess_mode="livemax",
)
READ_REPLICA_IN_USE = Gauge(
    "coalition_read_replica_in_use",
    "1 while read-only endpoints read from the replica, 0 while they fall back to the primary",
    multiprocess_mode="livemin",
)
