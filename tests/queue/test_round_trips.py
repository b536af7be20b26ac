"""RQ's per-job protocol with fewer round trips (nodedrop_rq/rq_integration/round_trips.py) keeps RQ's guarantees."""

from __future__ import annotations

import pytest
from redis import Redis
from rq import Queue
from rq.suspension import resume, suspend

from nodedrop_rq.connection import SERIALIZER
from nodedrop_rq.state import ExecutionStore
from nodedrop_rq.submit import submit_execution
from nodedrop_rq.worker import ExecutionWorker
from tests.conftest import holds_for, wait_for
from tests.queue.test_executions import status_of, wait_status
from tests.support import workflows
from tests.support.counting import counting


@pytest.mark.parametrize("isolation", ["fork", "supervised"])
def test_rq_jobs_that_depend_on_an_execution_run_after_it(start_pool, redis_conn, settings, isolation):
    # The success MULTI reads the dependents set instead of RQ's WATCH + SMEMBERS before it: a job added
    # while the execution runs must still be enqueued when it succeeds.
    start_pool(concurrency=1, EXECUTION_ISOLATION=isolation)
    execution_id = submit_execution(workflows.counted(), {"sleep": 1.5}, connection=redis_conn, settings=settings)
    wait_status(redis_conn, execution_id, "running", 20)
    queue = Queue(settings.queue, connection=redis_conn, serializer=SERIALIZER)
    dependent = queue.enqueue("tests.support.functions.mark_done", "test:dependent", depends_on=execution_id)
    assert dependent.get_status() == "deferred"
    wait_status(redis_conn, execution_id, "succeeded", 20)
    wait_for(lambda: redis_conn.get("test:dependent") == b"1", 20, what="the dependent job to run")
    wait_for(lambda: dependent.get_status(refresh=True) == "finished", 10)


@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
def test_idle_worker_keeps_a_full_lease_after_an_execution(start_pool, redis_conn, settings, outcome):
    # Skipped heartbeats must never leave the short lease of a running job on an idle worker.
    start_pool(concurrency=1, EXECUTION_ISOLATION="inline")
    if outcome == "succeeded":
        execution_id = submit_execution(workflows.quick(), connection=redis_conn, settings=settings)
    else:
        execution_id = submit_execution(workflows.failing(), {"succeedOn": 99}, connection=redis_conn,
                                        settings=settings.with_overrides(retry_intervals=(0,)))
    wait_status(redis_conn, execution_id, outcome, 20)
    (worker_key,) = wait_for(lambda: redis_conn.smembers("rq:workers"), 10)
    wait_for(lambda: redis_conn.hget(worker_key, "state") == b"idle", 10, what="the worker to be idle again")
    assert redis_conn.ttl(worker_key) > settings.worker_ttl


def test_suspension_is_still_noticed(start_pool, redis_conn, settings):
    start_pool(concurrency=1, EXECUTION_ISOLATION="inline")
    first = submit_execution(workflows.quick(), connection=redis_conn, settings=settings)
    wait_status(redis_conn, first, "succeeded", 20)
    suspend(redis_conn)
    try:
        # As with RQ's own worker, one blocked in the dequeue takes the next job before it looks again.
        woken = submit_execution(workflows.quick(), connection=redis_conn, settings=settings)
        wait_status(redis_conn, woken, "succeeded", 20)
        held = submit_execution(workflows.quick(), connection=redis_conn, settings=settings)
        holds_for(lambda: status_of(redis_conn, held) == "queued", 2, what="a suspended worker to leave it queued")
    finally:
        resume(redis_conn)
    wait_status(redis_conn, held, "succeeded", 20)


def _in_process_worker(redis_url: str, settings) -> ExecutionWorker:
    connection = Redis.from_url(redis_url)
    return ExecutionWorker([Queue(settings.queue, connection=connection, serializer=SERIALIZER)],
                           connection=connection, settings=settings)


def test_an_inline_execution_costs_at_most_five_round_trips(redis_url, redis_conn, settings):
    inline = settings.with_overrides(isolation="inline")
    count = 50
    ids = [submit_execution(workflows.quick(), {"n": i}, connection=redis_conn, settings=inline)
           for i in range(count)]
    worker = _in_process_worker(redis_url, inline)
    with counting() as sites:
        worker.work(burst=True, with_scheduler=False)
    per_execution = sum(sites.values()) / count
    assert all(status_of(redis_conn, i) == "succeeded" for i in ids)
    # RQ 2.12's own protocol with our attempt start took 15 here (dequeue 5, prepare 4, end 4, loop 2); now 4
    # and a few heartbeats: take the job, prepare and start it, write its success, RQ's finish.
    assert per_execution <= 5, per_execution


def test_executions_run_once_each_after_redis_forgot_its_scripts(redis_url, redis_conn, settings):
    # A restarted Redis has an empty script cache: every EVALSHA the worker pipelines (take, start,
    # success) is answered NOSCRIPT once, and each is sent again with its script.
    inline = settings.with_overrides(isolation="inline")
    ids = [submit_execution(workflows.quick(), {"n": i}, connection=redis_conn, settings=inline) for i in range(3)]
    worker = _in_process_worker(redis_url, inline)
    redis_conn.script_flush()
    worker.work(burst=True, with_scheduler=False, max_jobs=1)
    redis_conn.script_flush()
    worker.work(burst=True, with_scheduler=False)
    store = ExecutionStore(redis_conn, inline)
    for execution_id in ids:
        state = store.get(execution_id)
        assert state["status"] == "succeeded" and [a["status"] for a in state["attempts"]] == ["succeeded"]
    assert int(redis_conn.hget(f"nodedrop:counters:{inline.queue}", "completed")) == 3


def test_a_success_written_after_the_attempt_was_ended_elsewhere_changes_nothing(redis_url, redis_conn, settings,
                                                                                monkeypatch):
    # As when the supervisor or the sweep took the attempt for dead while its workflow still ran: the
    # execution waits for its retry, and RQ's job keeps what the retry needs.
    from nodedrop_rq.execution.transitions import Transitions
    from nodedrop_rq.rq_integration import jobs, names

    inline = settings.with_overrides(isolation="inline")
    execution_id = submit_execution(workflows.quick(), connection=redis_conn, settings=inline)
    real_run = jobs.run_workflow

    def ended_elsewhere(*args, **kwargs):  # type: ignore[no-untyped-def]
        token = redis_conn.hget(f"nodedrop:execution:{execution_id}", "token").decode()
        assert Transitions(redis_conn, inline, failed_registry=names.failed_registry).finish(
            execution_id, inline.queue, attempt=1, token=token, target="retrying", retry_in=30,
            error={"message": "taken for dead", "kind": "killed"})
        return real_run(*args, **kwargs)

    monkeypatch.setattr(jobs, "run_workflow", ended_elsewhere)
    _in_process_worker(redis_url, inline).work(burst=True, with_scheduler=False, max_jobs=1)
    state = ExecutionStore(redis_conn, inline).get(execution_id)
    assert state["status"] == "retrying" and state["attempts"][0]["error"]["message"] == "taken for dead"
    assert "output" not in state or state["output"] is None
    assert redis_conn.hget(f"nodedrop:counters:{inline.queue}", "completed") is None
    assert redis_conn.hexists(f"rq:job:{execution_id}", "timeout")  # what the retry runs with


def _pretend_dependents_came_late(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make workers treat dependents that existed before the job started as added while it ran."""
    from nodedrop_rq.rq_integration import round_trips

    prepare = round_trips.FewerRoundTrips.prepare_job_execution

    def prepared_without_dependents(self, job, *args, **kwargs):  # type: ignore[no-untyped-def]
        prepare(self, job, *args, **kwargs)
        self._nd_had_dependents = False

    monkeypatch.setattr(round_trips.FewerRoundTrips, "prepare_job_execution", prepared_without_dependents)


@pytest.mark.parametrize("added_while_running", [False, True])
def test_a_dependent_of_two_executions_finishing_together_is_enqueued_once(
        redis_url, redis_conn, settings, monkeypatch, added_while_running):
    from nodedrop_rq.rq_integration import round_trips

    inline = settings.with_overrides(isolation="inline")
    first, second = (submit_execution(workflows.quick(), {"n": n}, connection=redis_conn, settings=inline)
                     for n in (1, 2))
    queue = Queue(inline.queue, connection=redis_conn, serializer=SERIALIZER)
    dependent = queue.enqueue("tests.support.functions.mark_done", "test:fan-in", depends_on=[first, second])
    if added_while_running:
        # As if the dependent had been enqueued after both started: the late path after the MULTI.
        _pretend_dependents_came_late(monkeypatch)
        hooked_module, hooked_name = round_trips, "enqueue_late_dependents"
    else:
        # RQ's own WATCHed success path: the other parent finishes between its read and its MULTI.
        hooked_module, hooked_name = Queue, "move_dependents_to_ready"
    original = getattr(hooked_module, hooked_name)
    calls: list[str] = []

    def other_parent_finishes_first(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append("x")
        if len(calls) == 1:  # the other parent's worker finishes in between
            _in_process_worker(redis_url, inline).work(burst=True, with_scheduler=False, max_jobs=1)
        return original(*args, **kwargs)

    monkeypatch.setattr(hooked_module, hooked_name, other_parent_finishes_first)
    _in_process_worker(redis_url, inline).work(burst=True, with_scheduler=False, max_jobs=1)
    assert calls
    assert status_of(redis_conn, first) == status_of(redis_conn, second) == "succeeded"
    queued = [raw.decode() for raw in redis_conn.lrange(queue.key, 0, -1)]
    assert queued.count(dependent.id) == 1, queued


def test_an_error_enqueueing_dependents_does_not_fail_the_execution(redis_url, redis_conn, settings,
                                                                   monkeypatch):
    from redis.exceptions import ConnectionError as RedisConnectionError

    from nodedrop_rq.rq_integration import round_trips

    inline = settings.with_overrides(isolation="inline")
    execution_id = submit_execution(workflows.quick(), connection=redis_conn, settings=inline)
    queue = Queue(inline.queue, connection=redis_conn, serializer=SERIALIZER)
    queue.enqueue("tests.support.functions.mark_done", "test:never", depends_on=execution_id)
    def broken(job, queue):  # type: ignore[no-untyped-def]
        raise RedisConnectionError("connection lost right after the success MULTI")

    _pretend_dependents_came_late(monkeypatch)
    monkeypatch.setattr(round_trips, "enqueue_late_dependents", broken)
    _in_process_worker(redis_url, inline).work(burst=True, with_scheduler=False, max_jobs=1)
    assert status_of(redis_conn, execution_id) == "succeeded"
    job = queue.fetch_job(execution_id)
    assert job.get_status() == "finished"
    assert redis_conn.zscore(f"rq:scheduled:{inline.queue}", execution_id) is None  # not retried
