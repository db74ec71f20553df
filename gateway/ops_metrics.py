"""Operations gauges sampled from the database, and the record of `coalition verify` runs.

The `ops.sample_metrics` job (gateway/workers.py) reads, every SAMPLE_INTERVAL_S, what the
dashboards and alerts of infra/deploy/ need and the request path does not count: the outbox
backlog (events the webhook fan-out has not taken yet: `webhooks.fanout_queue`; the
outbox's own `delivered_at` is set by nothing today), the journal's growth, the last closed
settlement period, the last verify outcome, the streaming replicas' lag (pg_stat_replication,
seen from the primary) and the pool.
Every process samples for itself: a scrape of any replica of the service sees the same values,
and the workers of one `serve --workers N` export the latest sample (`mostrecent` gauges).
"""

from __future__ import annotations

import asyncpg

from gateway import metrics
from infra.db import Conn

SAMPLE_INTERVAL_S = 5.0

SAMPLE = """
SELECT
    (SELECT count(*) FROM webhooks.fanout_queue) AS outbox_undelivered,
    (SELECT coalesce(extract(epoch FROM now() - min(o.occurred_at)), 0)::float8
       FROM webhooks.fanout_queue q JOIN event_outbox o USING (event_id)) AS outbox_oldest_age_s,
    (SELECT coalesce(max(posting_id), 0) FROM ledger.posting) AS postings_written,
    (SELECT coalesce(extract(epoch FROM max(period_end)), 0)::float8
       FROM settlement.period) AS last_period_end_s,
    (SELECT count(*) FROM pg_stat_replication) AS replicas_streaming,
    (SELECT coalesce(max(extract(epoch FROM replay_lag)), 0)::float8
       FROM pg_stat_replication) AS replica_lag_s
"""
LAST_VERIFY = """
SELECT problems, extract(epoch FROM finished_at)::float8 AS finished_s
FROM ops_verify_run ORDER BY run_id DESC LIMIT 1
"""
RECORD_VERIFY = "INSERT INTO ops_verify_run (problems, detail) VALUES ($1, $2)"


async def sample(pool: asyncpg.Pool) -> int:
    """Set the gauges once; answers 0 (nothing processed: the job waits its interval)."""
    metrics.DB_POOL_SIZE.set(pool.get_size())
    metrics.DB_POOL_IDLE.set(pool.get_idle_size())
    metrics.DB_POOL_MAX.set(pool.get_max_size())
    async with pool.acquire() as conn:
        row = await conn.fetchrow(SAMPLE)
        verify_row = await conn.fetchrow(LAST_VERIFY)
    assert row is not None
    metrics.OUTBOX_UNDELIVERED.set(row["outbox_undelivered"])
    metrics.OUTBOX_OLDEST_AGE_SECONDS.set(row["outbox_oldest_age_s"])
    metrics.LEDGER_POSTINGS_WRITTEN.set(row["postings_written"])
    metrics.SETTLEMENT_LAST_PERIOD_END.set(row["last_period_end_s"])
    metrics.REPLICAS_STREAMING.set(row["replicas_streaming"])
    metrics.REPLICA_LAG_SECONDS.set(row["replica_lag_s"])
    if verify_row is not None:
        metrics.VERIFY_LAST_PROBLEMS.set(verify_row["problems"])
        metrics.VERIFY_LAST_RUN.set(verify_row["finished_s"])
    return 0


async def record_verify(conn: Conn, problems: list[str]) -> None:
    """`coalition verify` keeps its outcome for the service to export."""
    await conn.execute(RECORD_VERIFY, len(problems), problems)
