"""nodedrop_queue_wait_seconds from real workers, read on the real exporter endpoint: one observation per
attempt that started, each from the execution's enqueue, a retry's from its due time."""

from __future__ import annotations

from datetime import datetime

from nodedrop_rq import counters
from nodedrop_rq.settings import Settings
from nodedrop_rq.state import ExecutionStore
from nodedrop_rq.submit import submit_execution
from tests.exporter.conftest import q, scrape
from tests.queue.test_executions import wait_status
from tests.support import workflows

RETRY = {"EXECUTION_RETRY_INTERVALS": "1"}
# Stored times have millisecond (startedAt, finishedAt, nextRetryAt) or microsecond (RQ's enqueued_at)
# resolution; the wait is taken from the unrounded clock, so each expected wait is known to this much.
RESOLUTION = 0.003


def _epoch(stamp: bytes | str) -> float:
    text = stamp.decode() if isinstance(stamp, bytes) else stamp
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _attempt(redis_conn, execution_id: str, n: int) -> dict:
    # Read through the store: the state hash keeps attempts compactly (nodedrop_rq.state).
    return ExecutionStore(redis_conn, Settings()).get(execution_id)["attempts"][n - 1]


def test_waits_land_in_the_histogram_and_a_retry_waits_from_its_due_time(start_exporter, start_pool,
                                                                         redis_conn, settings):
    fast = settings.with_overrides(retry_intervals=(1,))
    # Fails its first attempt, succeeds on its second (after the 1 s retry interval).
    flaky = submit_execution(workflows.failing(), {"succeedOn": 2}, connection=redis_conn, settings=fast)
    first_enqueue = _epoch(redis_conn.hget(f"rq:job:{flaky}", "enqueued_at"))
    quick = [submit_execution(workflows.quick(), connection=redis_conn, settings=fast) for _ in range(4)]
    start_pool(concurrency=2, **RETRY)
    for execution_id in [*quick, flaky]:
        wait_status(redis_conn, execution_id, "succeeded", 30)

    expected = [_epoch(_attempt(redis_conn, i, 1)["startedAt"]) - _epoch(redis_conn.hget(f"rq:job:{i}", "enqueued_at"))
                for i in quick]
    first, second = _attempt(redis_conn, flaky, 1), _attempt(redis_conn, flaky, 2)
    expected.append(_epoch(first["startedAt"]) - first_enqueue)
    # nextRetryAt was the failed attempt's end + the interval. RQ's scheduler moved the job up to a second
    # later (its whole-second schedule, rounded up): that and its polling count as waiting, the move does not
    # restart the clock.
    due = _epoch(first["finishedAt"]) + fast.retry_intervals[0]
    retry_wait = _epoch(second["startedAt"]) - due
    expected.append(retry_wait)

    base = start_exporter(**RETRY)
    samples = scrape(base)
    assert samples[q("nodedrop_queue_wait_seconds_count")] == 6  # every attempt that started
    total = samples[q("nodedrop_queue_wait_seconds_sum")]
    assert abs(total - sum(expected)) <= RESOLUTION * len(expected)
    # Measured from the first enqueue, the retry would have waited at least its interval more.
    from_first_enqueue = sum(expected) - retry_wait + (_epoch(second["startedAt"]) - first_enqueue)
    assert from_first_enqueue - total >= fast.retry_intervals[0] - RESOLUTION * len(expected)

    buckets = {upper: samples[("nodedrop_queue_wait_seconds_bucket", (("le", f"{upper:g}"), ("queue", "executions")))]
               for upper in counters.WAIT_BUCKETS}
    assert samples[("nodedrop_queue_wait_seconds_bucket", (("le", "+Inf"), ("queue", "executions")))] == 6
    for upper, count in buckets.items():
        surely_in = sum(1 for w in expected if w <= upper - RESOLUTION)
        maybe_in = sum(1 for w in expected if w <= upper + RESOLUTION)
        assert surely_in <= count <= maybe_in, (upper, count, expected)
    assert list(buckets.values()) == sorted(buckets.values())

    # Both autoscaling values are served; with nothing waiting or running and no arrivals they are 0.
    assert samples[q("nodedrop_workers_desired_by_depth")] == 0
    assert samples[q("nodedrop_workers_desired")] == 0
