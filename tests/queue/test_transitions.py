"""The state machine against a real redis-server: each transition is fenced, a stale writer changes
nothing, and counters move only with a transition that applied."""

from __future__ import annotations

import pytest

from nodedrop_rq import keys
from nodedrop_rq.control import ExecutionControl
from nodedrop_rq.execution import status
from nodedrop_rq.execution.transitions import Transitions
from nodedrop_rq.rq_integration import names, private
from nodedrop_rq.submit import submit_execution
from tests.support import workflows


@pytest.fixture
def transitions(redis_conn, settings) -> Transitions:
    return Transitions(redis_conn, settings, failed_registry=names.failed_registry)


def _counters(redis_conn, queue: str) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in redis_conn.hgetall(keys.counters(queue)).items()
            if k.decode() in ("completed", "failed", "retried", "cancelled")}


def _submitted(redis_conn, settings) -> str:
    return submit_execution(workflows.quick(), connection=redis_conn, settings=settings)


def test_the_table_names_every_status_and_leaves_terminal_ones_only_by_requeue():
    for transition in status.TRANSITIONS.values():
        assert transition.sources <= status.ALL and transition.targets <= status.ALL
        if transition.sources & status.TERMINAL:
            assert transition.name in ("requeue", "start-requeued")
            assert transition.sources == {status.FAILED}
    assert status.allowed(status.FINISH, status.RUNNING, status.SUCCEEDED)
    assert not status.allowed(status.FINISH, status.SUCCEEDED, status.FAILED)
    assert not status.allowed(status.CANCEL_WAITING, status.RUNNING, status.CANCELLED)


def test_an_attempt_starts_only_from_queued_or_retrying(redis_conn, settings, transitions):
    execution_id = _submitted(redis_conn, settings)
    first = transitions.start(execution_id, settings.queue, "w1", "token-1")
    assert first.began and first.attempt == 1
    # A second delivery while it runs (or after it ended) begins nothing.
    duplicate = transitions.start(execution_id, settings.queue, "w2", "token-2")
    assert not duplicate.began and duplicate.status == "running"
    assert ExecutionControl(redis_conn, settings).get(execution_id)["attempt"] == 1


def test_a_stale_writer_changes_nothing(redis_conn, settings, transitions):
    execution_id = _submitted(redis_conn, settings)
    queue = settings.queue
    transitions.start(execution_id, queue, "w1", "token-1")
    assert transitions.finish(execution_id, queue, attempt=1, token="token-1", target=status.RETRYING,
                              error={"message": "boom"}, retry_in=2)
    second = transitions.start(execution_id, queue, "w2", "token-2")
    assert second.attempt == 2
    before = redis_conn.hgetall(keys.execution(execution_id))
    # Attempt 1 reports again (its worker was slow, not dead): ignored, whatever it says.
    for target in (status.SUCCEEDED, status.FAILED, status.RETRYING):
        assert not transitions.finish(execution_id, queue, attempt=1, token="token-1", target=target)
    # The right attempt number with another run's token is refused as well.
    assert not transitions.finish(execution_id, queue, attempt=2, token="token-1", target=status.SUCCEEDED)
    assert redis_conn.hgetall(keys.execution(execution_id)) == before
    assert _counters(redis_conn, queue) == {"retried": 1}
    assert transitions.finish(execution_id, queue, attempt=2, token="token-2", target=status.SUCCEEDED, output=[])
    # Terminal: nothing but a requeue of a failed execution leaves it.
    assert not transitions.finish(execution_id, queue, attempt=2, token="token-2", target=status.FAILED)
    assert not transitions.cancel_waiting(execution_id, queue, 2)
    assert not transitions.requeue(execution_id, queue, 2)
    assert not transitions.start(execution_id, queue, "w3", "token-3").began
    state = ExecutionControl(redis_conn, settings).get(execution_id)
    assert state["status"] == "succeeded" and [a["status"] for a in state["attempts"]] == ["failed", "succeeded"]
    assert _counters(redis_conn, queue) == {"retried": 1, "completed": 1}
    assert redis_conn.zscore(keys.active(queue), execution_id) is None


def test_a_resent_transition_counts_once(redis_conn, settings, transitions):
    # redis-py re-sends a script whose reply was lost; the second arrival finds its own write.
    execution_id = _submitted(redis_conn, settings)
    transitions.start(execution_id, settings.queue, "w1", "token-1")
    for _ in range(2):
        assert transitions.finish(execution_id, settings.queue, attempt=1, token="token-1",
                                  target=status.SUCCEEDED, output=[], duration=0.01)
    assert _counters(redis_conn, settings.queue) == {"completed": 1}
    assert int(redis_conn.hget(keys.counters(settings.queue), "duration_count")) == 1


def test_attempts_never_exceed_max_attempts(redis_conn, settings, transitions):
    execution_id = _submitted(redis_conn, settings)
    for n in range(1, settings.max_attempts + 1):
        started = transitions.start(execution_id, settings.queue, "w", f"t{n}")
        assert started.began and started.attempt == n
        target = status.RETRYING if n < settings.max_attempts else status.FAILED
        assert transitions.finish(execution_id, settings.queue, attempt=n, token=f"t{n}", target=target)
    assert status_of(redis_conn, execution_id) == "failed"
    # A requeue by RQ's tools starts a fresh round from `failed`; attempt numbers continue.
    requeued = transitions.start(execution_id, settings.queue, "w", "t-next")
    assert requeued.began and requeued.requeued and requeued.attempt == settings.max_attempts + 1
    assert requeued.max_attempts == 2 * settings.max_attempts
    assert _counters(redis_conn, settings.queue) == {"retried": settings.max_attempts - 1, "failed": 1}


def test_a_leftover_delivery_of_a_failed_execution_does_not_restart_it(redis_conn, settings, transitions):
    # Only a job that left RQ's failed registry (rq requeue, rq-dashboard, FailedJobRegistry.requeue) restarts.
    execution_id = _submitted(redis_conn, settings)
    for n in range(1, settings.max_attempts + 1):
        transitions.start(execution_id, settings.queue, "w", f"t{n}")
        transitions.finish(execution_id, settings.queue, attempt=n, token=f"t{n}",
                           target=status.RETRYING if n < settings.max_attempts else status.FAILED)
    redis_conn.zadd(names.failed_registry(settings.queue), {execution_id: 1})
    leftover = transitions.start(execution_id, settings.queue, "w", "t-dup")
    assert not leftover.began and leftover.status == "failed"
    redis_conn.zrem(names.failed_registry(settings.queue), execution_id)
    assert transitions.start(execution_id, settings.queue, "w", "t-requeued").began


def test_a_resent_start_runs_the_attempt_it_began(redis_conn, settings, transitions):
    # redis-py re-sends the preparation pipeline after a lost reply: the start finds its own attempt.
    execution_id = _submitted(redis_conn, settings)
    first = transitions.start(execution_id, settings.queue, "w", "token-1")
    again = transitions.start(execution_id, settings.queue, "w", "token-1")
    assert first.began and again.began and again.attempt == first.attempt == 1
    assert not transitions.start(execution_id, settings.queue, "w", "token-2").began


def test_a_zombie_attempts_progress_changes_nothing(redis_conn, settings, transitions):
    from nodedrop_rq.progress import NodeProgress
    from nodedrop_rq.workflow import NodeEvent

    execution_id = _submitted(redis_conn, settings)
    transitions.start(execution_id, settings.queue, "w", "t1")
    transitions.finish(execution_id, settings.queue, attempt=1, token="t1", target=status.RETRYING)
    transitions.start(execution_id, settings.queue, "w", "t2")
    before = redis_conn.hgetall(keys.execution(execution_id))
    zombie = NodeProgress(redis_conn, execution_id, 1, "t1")
    zombie.record(NodeEvent("node-started", "n", "N", "set", 0.0))
    zombie.flush()
    zombie.finish()
    assert redis_conn.hgetall(keys.execution(execution_id)) == before


def test_a_cancel_request_ends_the_execution_at_its_start(redis_conn, settings, transitions):
    execution_id = _submitted(redis_conn, settings)
    redis_conn.hset(keys.execution(execution_id), "cancelRequested", "1")
    started = transitions.start(execution_id, settings.queue, "w", "t")
    assert started.outcome == "cancelled" and not started.began
    assert status_of(redis_conn, execution_id) == "cancelled"
    assert _counters(redis_conn, settings.queue) == {"cancelled": 1}


def test_every_private_rq_name_we_use_still_exists(redis_conn):
    from rq import Queue
    from rq.job import Job
    from rq.scheduler import RQScheduler
    from rq.worker import Worker
    from rq.worker_pool import WorkerPool

    queue = Queue("probe", connection=redis_conn)
    instances = {Worker: Worker([queue], connection=redis_conn), Job: Job.create("os.getpid", connection=redis_conn),
                 RQScheduler: RQScheduler([queue], connection=redis_conn),
                 WorkerPool: WorkerPool([queue], connection=redis_conn, num_workers=1)}
    absent = private.missing(instances)
    assert not absent, "this RQ release lacks private names nodedrop-rq relies on: " + "; ".join(absent)


def status_of(redis_conn, execution_id: str) -> str:
    return redis_conn.hget(keys.execution(execution_id), "status").decode()


def _wait_histogram(redis_conn, queue: str) -> tuple[int, float, dict[str, float]]:
    from nodedrop_rq import counters
    raw = counters.decode(redis_conn.hgetall(keys.counters(queue)))
    buckets = dict(counters.cumulative_buckets(raw, counters.WAIT_BUCKETS, counters.WAIT_BUCKET_PREFIX))
    return int(buckets["+Inf"]), float(raw.get(counters.WAIT_SUM, 0)), buckets


def test_the_start_observes_the_queue_wait_from_the_enqueue(redis_conn, settings, transitions):
    import time
    queue = settings.queue
    execution_id = _submitted(redis_conn, settings)
    before = time.time()
    first = transitions.start(execution_id, queue, "w1", "token-1", enqueued_at=before - 100)
    after = time.time()
    assert first.began
    count, total, buckets = _wait_histogram(redis_conn, queue)
    assert count == 1 and 100 <= total <= after - before + 100 + 1e-3
    assert (buckets["60"], buckets["120"], buckets["+Inf"]) == (0, 1, 1)
    # The same start re-sent (a lost reply) and another delivery while it runs observe nothing.
    assert transitions.start(execution_id, queue, "w1", "token-1", enqueued_at=before - 100).began
    assert not transitions.start(execution_id, queue, "w2", "token-2", enqueued_at=before).began
    assert _wait_histogram(redis_conn, queue)[0] == 1
    # A start without a known enqueue time (an older caller) is not observed rather than guessed.
    other = _submitted(redis_conn, settings)
    assert transitions.start(other, queue, "w3", "token-3").began
    assert _wait_histogram(redis_conn, queue)[0] == 1


@pytest.mark.parametrize("due", ["2024-02-29T23:59:59.500Z", "2023-12-31T23:59:58.250Z", "2000-03-01T00:00:00.000Z"])
def test_a_retry_waits_from_its_due_time_not_from_the_first_enqueue(redis_conn, settings, transitions, due):
    import time
    from datetime import datetime
    queue = settings.queue
    execution_id = _submitted(redis_conn, settings)
    assert transitions.start(execution_id, queue, "w1", "token-1", enqueued_at=time.time()).began
    assert transitions.finish(execution_id, queue, attempt=1, token="token-1", target=status.RETRYING,
                              error={"message": "boom"}, retry_in=2)
    # The due time the failed attempt wrote, moved into the past (a date the parser must get right).
    redis_conn.hset(keys.execution(execution_id), "nextRetryAt", due)
    ready = datetime.fromisoformat(due.replace("Z", "+00:00")).timestamp()
    count, total, _ = _wait_histogram(redis_conn, queue)
    before = time.time()
    # RQ's scheduler re-enqueued it just now; the first enqueue was long ago: neither is the wait's start.
    assert transitions.start(execution_id, queue, "w2", "token-2", enqueued_at=before).began
    after = time.time()
    new_count, new_total, _ = _wait_histogram(redis_conn, queue)
    assert new_count == count + 1
    assert before - ready - 1e-3 <= new_total - total <= after - ready + 1e-3
