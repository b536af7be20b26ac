"""Execution semantics under real faults: real worker processes killed at chosen points, stale RQ locks,
replies lost in a TCP proxy, and RQ's own tools acting on executions.

Every test ends with the same accounting: one terminal state per execution, attempts within
``maxAttempts`` and each attempt record terminal, the side effect (a POST to a local HTTP counter) once per
succeeded execution unless an attempt was cut off mid-run (at-least-once), and the counters equal to the
transitions the test counted.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
from redis import Redis
from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.worker import Worker

from nodedrop_rq import keys
from nodedrop_rq.connection import SERIALIZER
from nodedrop_rq.control import ExecutionControl
from nodedrop_rq.state import TERMINAL
from nodedrop_rq.submit import submit_execution
from tests.conftest import ROOT, child_env, holds_for, wait_for
from tests.queue.test_executions import status_of, wait_status
from tests.support import workflows
from tests.support.http_counter import HttpCounter
from tests.support.redis_proxy import RedisProxy

FAST_RETRIES = {"EXECUTION_RETRY_INTERVALS": "1,1,1"}


@pytest.fixture
def counter() -> Iterator[HttpCounter]:
    server = HttpCounter()
    yield server
    server.close()


@pytest.fixture
def proxy(redis_server, redis_url) -> Iterator[RedisProxy]:
    tcp = RedisProxy(redis_server.port)
    yield tcp
    tcp.close()


def _counters(connection: Redis, queue: str) -> dict[str, int]:
    raw = connection.hgetall(keys.counters(queue))
    return {k.decode(): int(float(v)) for k, v in raw.items()
            if k.decode() in ("completed", "failed", "retried", "cancelled")}


def account(connection: Redis, settings, ids: list[str], counter: HttpCounter | None = None) -> list[dict]:
    """The invariants every fault test ends with."""
    control = ExecutionControl(connection, settings)
    states = [control.get(i) for i in ids]
    expected = {"completed": 0, "failed": 0, "retried": 0, "cancelled": 0}
    for state in states:
        assert state["status"] in TERMINAL, state
        attempts = state["attempts"]
        assert len(attempts) == state["attempt"] <= state["maxAttempts"], state
        assert [a["attempt"] for a in attempts] == list(range(1, len(attempts) + 1)), attempts
        assert all(a["status"] in TERMINAL for a in attempts), attempts
        assert connection.zscore(keys.active(settings.queue), state["id"]) is None
        rounds = state["requeues"] + 1
        ended = {"succeeded": "completed", "failed": "failed", "cancelled": "cancelled"}[state["status"]]
        expected[ended] += 1
        # Each round but the last ended failed; every other failed attempt was retried.
        failed_rounds = rounds if state["status"] == "failed" else rounds - 1
        expected["failed"] += rounds - 1
        expected["retried"] += sum(a["status"] == "failed" for a in attempts) - failed_rounds
        if counter is not None:
            runs = counter.counts[state["id"]]
            # At least once per success; more only for attempts that ran (at-least-once after a fault).
            assert runs <= len(attempts), (state["id"], runs, attempts)
            assert runs >= 1 or state["status"] != "succeeded", state
    actual = _counters(connection, settings.queue)
    assert {k: actual.get(k, 0) for k in expected} == expected, (actual, expected)
    return states


def _submit(connection: Redis, settings, counter: HttpCounter, workflow: dict | None = None,
            execution_id: str | None = None, **data) -> str:
    """Submit with the execution id as the counter's tag, so each execution counts its own runs."""
    execution_id = execution_id or uuid.uuid4().hex
    submit_execution(workflow or workflows.http_counted(), {"counterUrl": counter.url, "tag": execution_id,
                                                            "sleep": 0, **data},
                     connection=connection, settings=settings, execution_id=execution_id)
    return execution_id


def _rq_worker(redis_url: str, worker_class: str, *extra: str, **env: str) -> subprocess.Popen[bytes]:
    # Inline: these workers die themselves, as a whole container would; supervised, their supervisor
    # would survive them.
    env.setdefault("EXECUTION_ISOLATION", "inline")
    return subprocess.Popen([sys.executable, "-m", "rq.cli", "worker", "-w", worker_class,
                             "-S", "rq.serializers.JSONSerializer", "--url", redis_url, *extra, "executions"],
                            env=child_env(redis_url, **env), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


# -- a worker killed between dequeue and the attempt's start ------------------------------------------

@pytest.mark.slow
def test_a_worker_killed_after_dequeue_runs_the_execution_once_even_after_rqs_intermediate_cleanup(
        start_pool, redis_conn, redis_url, settings, counter):
    ids = [_submit(redis_conn, settings, counter) for _ in range(2)]
    killed_at = time.monotonic()
    for worker_class in ("DiesAfterDequeue", "DiesAfterPrepareExecution"):
        victim = _rq_worker(redis_url, f"tests.support.dying_workers.{worker_class}")
        assert victim.wait(30) == -9
    queue_key = "rq:queue:executions"
    assert redis_conn.llen(queue_key) == 0 and redis_conn.llen(f"{queue_key}:intermediate") == 2
    start_pool(concurrency=2)
    for execution_id in ids:
        wait_status(redis_conn, execution_id, "succeeded", 45)
    recovered_in = time.monotonic() - killed_at
    # RQ's own intermediate-list cleanup acts 60 s or more after it first sees an entry; nothing may change
    # until well past it.
    holds_for(lambda: all(status_of(redis_conn, i) == "succeeded" and counter.counts[i] == 1 for i in ids),
              max(0.0, 80 - (time.monotonic() - killed_at)), interval=0.5, what="one run each, still succeeded")
    states = account(redis_conn, settings, ids, counter)
    assert all(s["attempt"] == 1 and counter.counts[s["id"]] == 1 for s in states), states
    assert recovered_in < 35, recovered_in
    assert redis_conn.llen(f"{queue_key}:intermediate") == 0


# -- stale locks of dead workers ----------------------------------------------------------------------

@pytest.mark.slow
def test_recovery_takes_under_30_s_although_dead_workers_hold_the_maintenance_locks(
        start_pool, redis_conn, redis_url, settings, counter):
    holder = _rq_worker(redis_url, "tests.support.dying_workers.DiesHoldingMaintenanceLocks")
    assert holder.wait(30) == -9
    assert redis_conn.ttl("rq:clean_registries:executions") > 800  # RQ's own lock, left for 15 minutes
    pool = start_pool(concurrency=1)
    execution_id = _submit(redis_conn, settings, counter, sleep=4)
    wait_for(lambda: counter.counts[execution_id] == 1, 30, what="the first attempt to run")
    pool.kill_all()
    killed_at = time.monotonic()
    start_pool(concurrency=1)
    wait_for(lambda: ExecutionControl(redis_conn, settings).get(execution_id)["attempt"] == 2, 60,
             what="a second attempt")
    recovered_in = time.monotonic() - killed_at
    wait_status(redis_conn, execution_id, "succeeded", 30)
    (state,) = account(redis_conn, settings, [execution_id], counter)
    assert [a["status"] for a in state["attempts"]] == ["failed", "succeeded"]
    assert state["attempts"][0]["error"]["kind"] == "abandoned"
    print(f"recovered {recovered_in:.1f} s after the kill")
    assert recovered_in < 30 + 5, recovered_in  # 30 s promised; 5 s of tolerance for a loaded machine


def test_warm_shutdown_releases_the_maintenance_lock(start_pool, redis_conn, settings):
    pool = start_pool(concurrency=1)
    wait_for(lambda: redis_conn.smembers("rq:workers"), 20, what="the worker to register")
    assert pool.terminate(30) == 0
    assert not redis_conn.exists(keys.maintenance_lock(settings.queue))
    assert not redis_conn.exists("rq:clean_registries:executions")


# -- replies lost after Redis applied the write ------------------------------------------------------

@pytest.mark.parametrize("isolation", ["supervised", "fork"])
def test_a_lost_reply_after_success_never_runs_the_execution_again(start_pool, redis_conn, settings, counter,
                                                                   proxy, isolation):
    start_pool(concurrency=1, REDIS_URL=proxy.url, EXECUTION_ISOLATION=isolation, **FAST_RETRIES)
    wait_for(lambda: redis_conn.smembers("rq:workers"), 20, what="the worker to register")
    ids = []
    for lost in ("RQ's success MULTI", "the success transition"):
        execution_id = uuid.uuid4().hex
        if lost == "RQ's success MULTI":
            proxy.drop_reply_once(b"successful_job_count", execution_id.encode())
        else:
            proxy.drop_reply_once(b'"type":"completed"', execution_id.encode(), command=b"EVAL")
        dropped = proxy.dropped
        _submit(redis_conn, settings, counter, execution_id=execution_id)
        wait_status(redis_conn, execution_id, "succeeded", 30)
        wait_for(lambda d=dropped: proxy.dropped == d + 1, 10, what=f"the reply to {lost} to be dropped")
        ids.append(execution_id)
    # A wrongly scheduled retry (1 s) would start within this window.
    holds_for(lambda: all(counter.counts[i] == 1 and status_of(redis_conn, i) == "succeeded" for i in ids), 4,
              what="no second run")
    for state in account(redis_conn, settings, ids, counter):
        assert state["attempt"] == 1 and counter.counts[state["id"]] == 1
        assert redis_conn.zscore("rq:scheduled:executions", state["id"]) is None


def test_a_lost_reply_to_the_submit_transaction_stores_and_enqueues_once(start_pool, redis_conn, settings,
                                                                         counter, proxy):
    through_proxy = Redis.from_url(proxy.url)
    proxy.drop_reply_once(b"workflowName")
    execution_id = _submit(through_proxy, settings, counter)
    assert proxy.dropped == 1
    assert redis_conn.exists(keys.execution(execution_id))
    queued = [raw.decode() for raw in redis_conn.lrange("rq:queue:executions", 0, -1)]
    assert queued == [execution_id]
    # A client retrying with the same id (or idempotency key) gets the one execution back.
    again = submit_execution(workflows.http_counted(), {"counterUrl": counter.url, "tag": execution_id},
                             connection=through_proxy, settings=settings, execution_id=execution_id)
    assert again == execution_id and redis_conn.llen("rq:queue:executions") == 1
    start_pool(concurrency=1)
    wait_status(redis_conn, execution_id, "succeeded", 30)
    account(redis_conn, settings, [execution_id], counter)
    assert counter.counts[execution_id] == 1


def test_a_submit_that_did_not_reach_redis_raises(redis_conn, settings, counter):
    from redis.exceptions import ConnectionError as RedisConnectionError

    unreachable = Redis(port=1, socket_connect_timeout=0.2)
    with pytest.raises(RedisConnectionError):
        _submit(unreachable, settings, counter)
    assert redis_conn.llen("rq:queue:executions") == 0


# -- RQ's own tools -----------------------------------------------------------------------------------

REQUEUE_TOOLS = ("rq requeue", "FailedJobRegistry.requeue", "nodedrop-rq failed requeue",
                 "Job.requeue (rq-dashboard)")


def test_requeue_with_any_of_rqs_tools_or_ours_gives_a_fresh_retry_schedule(start_pool, redis_conn, redis_url,
                                                                            settings, counter):
    # One execution per tool, side by side. The first three fail on attempts 1-5 and succeed on the 6th (the
    # 2nd of the fresh round); the last always fails, so its second round fails too.
    start_pool(concurrency=4, **FAST_RETRIES)
    fast = settings.with_overrides(retry_intervals=(1, 1, 1))
    ids = {tool: _submit(redis_conn, fast, counter, workflows.http_counted_failing(),
                         succeedOn=99 if tool.startswith("Job.requeue") else 6) for tool in REQUEUE_TOOLS}
    failed_registry = FailedJobRegistry("executions", connection=redis_conn, serializer=SERIALIZER)
    for execution_id in ids.values():
        wait_status(redis_conn, execution_id, "failed", 60)
        assert ExecutionControl(redis_conn, settings).get(execution_id)["attempt"] == 4
        # RQ moves the job to its failed registry in its own MULTI, just after the execution reads `failed`.
        wait_for(lambda e=execution_id: e in failed_registry, 5, what="the job in RQ's failed registry")
    for tool, execution_id in ids.items():
        if tool == "rq requeue":
            subprocess.run([sys.executable, "-m", "rq.cli", "requeue", "--queue", "executions", "-S",
                            "rq.serializers.JSONSerializer", "--url", redis_url, execution_id], check=True, cwd=ROOT,
                           env=child_env(redis_url), capture_output=True)
        elif tool == "FailedJobRegistry.requeue":
            FailedJobRegistry("executions", connection=redis_conn, serializer=SERIALIZER).requeue(execution_id)
        elif tool.startswith("Job.requeue"):  # what rq-dashboard's Requeue and Requeue All call
            Job.fetch(execution_id, connection=redis_conn, serializer=SERIALIZER).requeue()
        else:
            subprocess.run([sys.executable, "-m", "nodedrop_rq", "failed", "requeue", execution_id], check=True,
                           cwd=ROOT, env=child_env(redis_url), capture_output=True)
    always = ids["Job.requeue (rq-dashboard)"]
    for tool, execution_id in ids.items():
        wait_for(lambda e=execution_id, t=tool: ExecutionControl(redis_conn, settings).get(e)["attempt"]
                 == (8 if t.startswith("Job.requeue") else 6) and status_of(redis_conn, e) in TERMINAL, 60,
                 what=f"the second round after {tool}")
    states = account(redis_conn, settings, list(ids.values()), counter)
    for state in states:
        assert state["maxAttempts"] == 8 and state["requeues"] == 1
        if state["id"] == always:
            assert state["status"] == "failed" and counter.counts[always] == 8
            job = Job.fetch(always, connection=redis_conn, serializer=SERIALIZER)
            assert job.get_status() == "failed" and job.id in FailedJobRegistry("executions", connection=redis_conn)
        else:
            assert [a["status"] for a in state["attempts"]] == ["failed"] * 5 + ["succeeded"]
            assert counter.counts[state["id"]] == 6
    assert _counters(redis_conn, settings.queue) == {"retried": 3 * 4 + 6, "failed": 3 + 2, "completed": 3}


def test_deleting_or_cancelling_the_rq_job_cancels_the_waiting_execution(start_pool, redis_conn, settings,
                                                                        counter):
    ids = {how: _submit(redis_conn, settings, counter) for how in ("delete", "cancel")}
    for how, execution_id in ids.items():
        job = Job.fetch(execution_id, connection=redis_conn, serializer=SERIALIZER)
        job.delete() if how == "delete" else job.cancel()  # what rq-dashboard's Delete and Cancel call
    start_pool(concurrency=1)
    for execution_id in ids.values():
        wait_status(redis_conn, execution_id, "cancelled", 20)
    account(redis_conn, settings, list(ids.values()), counter)
    assert all(counter.counts[i] == 0 for i in ids.values())
    assert _counters(redis_conn, settings.queue) == {"cancelled": 2}


def test_cancelling_a_running_job_with_rq_stops_the_execution_at_a_node_boundary(start_pool, redis_conn,
                                                                                   settings, counter):
    # Maintenance runs in idle workers: with every worker busy, nobody would notice before the end.
    start_pool(concurrency=2)
    # Maintenance (every EXECUTION_MAINTENANCE_INTERVAL, 5 s) notices the cancelled job; the node sleeps longer.
    execution_id = _submit(redis_conn, settings, counter, sleep=8)
    wait_for(lambda: counter.counts[execution_id] == 1, 20, what="the execution to run")
    Job.fetch(execution_id, connection=redis_conn, serializer=SERIALIZER).cancel()
    wait_status(redis_conn, execution_id, "cancelled", 30)
    (state,) = account(redis_conn, settings, [execution_id], counter)
    assert "mark" not in state["nodes"]  # the node after the running one never started


@pytest.mark.parametrize("isolation", ["supervised", "fork"])
def test_rq_sees_which_execution_a_busy_worker_runs(start_pool, redis_conn, settings, counter, isolation):
    # What rq-dashboard's workers page and `rq info` read.
    start_pool(concurrency=1, EXECUTION_ISOLATION=isolation)
    execution_id = _submit(redis_conn, settings, counter, sleep=2)
    wait_status(redis_conn, execution_id, "running", 20)
    (worker,) = Worker.all(connection=redis_conn)
    assert worker.get_state() == "busy"
    assert worker.get_current_job_id() == execution_id
    assert worker.get_current_job().id == execution_id
    wait_status(redis_conn, execution_id, "succeeded", 20)


def test_an_inline_stop_that_races_a_node_failure_still_ends_the_execution(start_pool, redis_conn, settings,
                                                                           counter):
    from rq.command import send_stop_job_command

    # Inline, RQ's stop becomes a cancel at the next node boundary; the node fails before it. The failure
    # is recorded as a retry, RQ must retry it, and the retry's start finds the cancel.
    start_pool(concurrency=1, EXECUTION_ISOLATION="inline", **FAST_RETRIES)
    execution_id = _submit(redis_conn, settings, counter, workflows.slow_failing(), sleep=3)
    wait_for(lambda: counter.counts[execution_id] == 1, 20, what="the attempt to run")
    send_stop_job_command(redis_conn, execution_id, serializer=SERIALIZER)
    wait_status(redis_conn, execution_id, "cancelled", 30)
    (state,) = account(redis_conn, settings, [execution_id], counter)
    assert [a["status"] for a in state["attempts"]] == ["failed"]


def test_a_retry_lost_between_rqs_two_writes_is_delivered_again(start_pool, redis_conn, settings, counter):
    # RQ writes a retried job's `scheduled` status, then (in a MULTI) its scheduled-registry entry; a worker
    # killed between the two leaves a job no scheduler will ever enqueue. The entry is removed here as
    # that crash would have left it.
    start_pool(concurrency=1, EXECUTION_RETRY_INTERVALS="30,30,30")
    execution_id = _submit(redis_conn, settings, counter, workflows.http_counted_failing(), succeedOn=2)
    wait_status(redis_conn, execution_id, "retrying", 20)
    wait_for(lambda: redis_conn.zscore("rq:scheduled:executions", execution_id), 10, what="the scheduled retry")
    redis_conn.zrem("rq:scheduled:executions", execution_id)
    assert redis_conn.hget(f"rq:job:{execution_id}", "status") == b"scheduled"
    wait_status(redis_conn, execution_id, "succeeded", 40)  # long before the 30 s retry interval would end
    (state,) = account(redis_conn, settings, [execution_id], counter)
    assert [a["status"] for a in state["attempts"]] == ["failed", "succeeded"]
