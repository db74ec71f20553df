"""Webhook delivery metrics (exported by gateway/metrics.py, served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Outcomes are a closed set: delivered, failed_attempt (will be retried), failed (no retry
# left), refused (SSRF at send time), lost_lease (recorded after another worker took it over).
WEBHOOK_DELIVERIES = Counter(
    "coalition_webhook_deliveries", "Webhook delivery attempts, by outcome", ["outcome"]
)
# From the event's occurred_at to the 2xx that delivered it: retries included.
WEBHOOK_DELIVERY_LAG_SECONDS = Histogram(
    "coalition_webhook_delivery_lag_seconds",
    "Seconds from an event to its successful webhook delivery",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200, 36000, 172800),
)
WEBHOOK_QUEUE_DEPTH = Gauge(
    "coalition_webhook_queue_depth",
    "Webhook work waiting: messages pending or sending, events not yet fanned out",
    ["queue"],
    multiprocess_mode="mostrecent",  # read from the database by every worker: the latest
)
WEBHOOK_ENDPOINTS_DISABLED = Counter(
    "coalition_webhook_endpoints_disabled",
    "Webhook endpoints disabled by delivery, by reason (failing, gone)",
    ["reason"],
)
