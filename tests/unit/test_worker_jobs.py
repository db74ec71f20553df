"""When a background job runs again at once, and when it waits for its interval."""

from __future__ import annotations

from gateway.workers import Job, default_jobs


async def _nothing(_: object) -> int:
    return 0


def test_a_job_with_a_batch_reruns_at_once_only_after_a_full_one() -> None:
    job = Job("fold", 0.5, _nothing, batch_full=1_000)
    assert job.again_at_once(1_000)  # a backlog: drain it without waiting
    assert not job.again_at_once(999)  # steady load: wait, fold what queued meanwhile
    assert not job.again_at_once(0)


def test_a_job_without_a_batch_reruns_whenever_it_did_something() -> None:
    job = Job("close", 60.0, _nothing)
    assert job.again_at_once(1)
    assert not job.again_at_once(0)


def test_the_request_path_queues_are_drained_by_full_batches_only() -> None:
    jobs = {job.name: job for job in default_jobs()}
    for name in ("ledger.fold_deltas", "ledger.seal_blocks", "shoppers.refresh_aggregates"):
        assert jobs[name].batch_full is not None, name
