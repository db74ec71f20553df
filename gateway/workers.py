"""Background workers: periodic jobs run inside `coalition serve`.

Jobs coordinate through PostgreSQL (SKIP LOCKED, advisory locks), so any number of processes
may run the same jobs side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from gateway import availability, metrics, ops_metrics
from infra.settings import Settings
from ledger import service as ledger
from ledger import settlement
from partners.membership import renewal as membership_renewal
from partners.webhooks import fanout as webhook_fanout
from partners.webhooks.worker import WebhookWorker
from shoppers import aggregates, expiry, segments, tiers
from shoppers.challenges import worker as challenge_worker

log = logging.getLogger(__name__)

# How long a job sleeps after a run that found nothing to do.
ROLLUP_INTERVAL_S = 0.5
SEAL_INTERVAL_S = 1.0
HOLD_RELEASE_INTERVAL_S = 5.0
EXPIRY_INTERVAL_S = 60.0
SETTLEMENT_INTERVAL_S = 60.0
TIER_REVIEW_INTERVAL_S = 3600.0  # reviews act only on shoppers whose yearly review is due
EXPIRY_NOTICE_INTERVAL_S = 600.0
AGGREGATES_INTERVAL_S = 1.0
SEGMENTS_INTERVAL_S = 60.0
MEMBERSHIP_INTERVAL_S = 60.0

JobFn = Callable[[asyncpg.Pool], Awaitable[int]]


@dataclass(frozen=True)
class Job:
    """run returns how many items it processed. A run that filled its batch (`batch_full`
    items or more) re-runs at once: a backlog is drained without waiting. Any other run waits
    `interval_s`, so under steady load a job runs at its interval over what queued meanwhile
    instead of looping over a few items at a time: each run has a fixed cost (a checkout, its
    plans, a commit) that measured about 0.5 ms of PostgreSQL CPU per purchase when the jobs
    looped. None: re-run at once whenever the run processed anything (jobs that act rarely)."""

    name: str
    interval_s: float
    run: JobFn
    batch_full: int | None = None

    def again_at_once(self, processed: int) -> bool:
        if self.batch_full is None:
            return processed > 0
        return processed >= self.batch_full


class Scheduler:
    def __init__(self, pool: asyncpg.Pool, jobs: list[Job]) -> None:
        self._pool = pool
        self._jobs = [observed(job) for job in jobs]
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        assert not self._tasks, "the scheduler starts once"
        self._tasks = [asyncio.create_task(self._loop(job), name=job.name) for job in self._jobs]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _loop(self, job: Job) -> None:
        while True:
            try:
                processed = await job.run(self._pool)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                # The database may be restarting: log, wait, try again.
                if not availability.STATE.outage(exc):  # an outage is logged once (issue 21)
                    log.warning("job failed", extra={"job": job.name, "error": str(exc)})
                processed = 0
            await asyncio.sleep(0 if job.again_at_once(processed) else job.interval_s)


async def _fold_deltas(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        return await ledger.fold_deltas(conn)


async def _seal_blocks(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        return await ledger.seal_blocks(conn)


async def _release_expired_holds(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        return await ledger.release_expired_holds(conn, now=datetime.now(UTC))


async def _expire_lots(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        return await ledger.expire_lots(conn, now=datetime.now(UTC))


async def _close_due_periods(pool: asyncpg.Pool) -> int:
    return await settlement.close_due_periods(pool, now=datetime.now(UTC))


async def _review_tiers(pool: asyncpg.Pool) -> int:
    return await tiers.review_tiers(pool, now=datetime.now(UTC))


async def _record_expiry_notices(pool: asyncpg.Pool) -> int:
    return await expiry.record_expiry_notices(pool, now=datetime.now(UTC))


async def _run_memberships(pool: asyncpg.Pool) -> int:
    return await membership_renewal.run(pool, now=datetime.now(UTC))


async def _refresh_segments(pool: asyncpg.Pool) -> int:
    return await segments.refresh_segments(pool, now=datetime.now(UTC))


def default_jobs() -> list[Job]:
    """The jobs every server process runs."""
    return [
        Job("ledger.fold_deltas", ROLLUP_INTERVAL_S, _fold_deltas, ledger.ROLLUP_BATCH_MAX),
        Job("ledger.seal_blocks", SEAL_INTERVAL_S, _seal_blocks, ledger.SEAL_BATCH_MAX),
        Job(
            "ledger.release_expired_holds",
            HOLD_RELEASE_INTERVAL_S,
            _release_expired_holds,
            ledger.WORKER_BATCH_MAX,
        ),
        Job("ledger.expire_lots", EXPIRY_INTERVAL_S, _expire_lots, ledger.WORKER_BATCH_MAX),
        Job("settlement.close_due_periods", SETTLEMENT_INTERVAL_S, _close_due_periods),
        Job("shoppers.review_tiers", TIER_REVIEW_INTERVAL_S, _review_tiers),
        Job("shoppers.expiry_notices", EXPIRY_NOTICE_INTERVAL_S, _record_expiry_notices),
        Job(
            "shoppers.refresh_aggregates",
            AGGREGATES_INTERVAL_S,
            aggregates.refresh_aggregates,
            aggregates.FOLD_BATCH_MAX * aggregates.FOLD_BATCHES_PER_RUN_MAX,
        ),
        # The refresh itself runs at most hourly across processes; this is how often to ask.
        Job("shoppers.refresh_segments", SEGMENTS_INTERVAL_S, _refresh_segments),
        Job("ops.sample_metrics", ops_metrics.SAMPLE_INTERVAL_S, ops_metrics.sample),
        # Renewals at the end of a term, then monthly bonuses, each exactly once.
        Job("memberships.renew_and_grant", MEMBERSHIP_INTERVAL_S, _run_memberships),
    ]


# Webhooks (issue 16): the fan-out drains the outbox's queue, the dispatcher runs while sends
# are in flight (partners/webhooks/worker.py), the gauge is refreshed every few seconds.
WEBHOOK_FANOUT_INTERVAL_S = 0.25
WEBHOOK_DELIVERY_INTERVAL_S = 0.25
WEBHOOK_QUEUE_DEPTH_INTERVAL_S = 5.0


def webhook_jobs(settings: Settings) -> list[Job]:
    """The webhook jobs of a server process, configured by `settings`."""
    worker = WebhookWorker(settings)
    return [
        Job(
            "webhooks.fan_out",
            WEBHOOK_FANOUT_INTERVAL_S,
            worker.fan_out,
            webhook_fanout.FANOUT_BATCH_MAX,
        ),
        Job("webhooks.deliver", WEBHOOK_DELIVERY_INTERVAL_S, worker.deliver),
        Job("webhooks.queue_depth", WEBHOOK_QUEUE_DEPTH_INTERVAL_S, worker.measure_queue),
    ]


def observed(job: Job) -> Job:
    """The job with its runs counted (coalition_job_runs, _items, _last_success_timestamp)."""
    inner = job.run

    async def run(pool: asyncpg.Pool) -> int:
        try:
            processed = await inner(pool)
        except Exception:
            metrics.JOB_RUNS.labels(worker=job.name, outcome="failed").inc()
            raise
        metrics.JOB_RUNS.labels(worker=job.name, outcome="ok").inc()
        metrics.JOB_ITEMS.labels(worker=job.name).inc(processed)
        metrics.JOB_LAST_SUCCESS.labels(worker=job.name).set_to_current_time()
        return processed

    return Job(job.name, job.interval_s, run, job.batch_full)


# Challenges (issue 19): the worker folds purchase and refund events into progress, awards and
# claw-backs (shoppers/challenges/worker.py), off the purchase path.
CHALLENGES_INTERVAL_S = 0.5


def challenge_jobs() -> list[Job]:
    return [
        Job(
            "challenges.fold",
            CHALLENGES_INTERVAL_S,
            challenge_worker.run,
            challenge_worker.BATCH_MAX,
        )
    ]
