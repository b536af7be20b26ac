"""What an execution leaves in Redis: at most 2 KB, one stored document per distinct workflow, and jobs
that RQ's own tools still read and requeue. Run by an in-process worker (no pool), so it is fast."""

from __future__ import annotations

from collections.abc import Callable

from rq.job import Job
from rq.registry import FailedJobRegistry

from bench.common import trivial_workflow
from bench.redis_footprint import failing_workflow
from nodedrop_rq import keys
from nodedrop_rq.connection import SERIALIZER
from nodedrop_rq.control import ExecutionControl
from nodedrop_rq.documents import digest_of
from nodedrop_rq.state import ExecutionStore
from nodedrop_rq.submit import submit_execution
from tests.queue.test_executions import status_of
from tests.queue.test_round_trips import _in_process_worker
from tests.support import workflows

BUDGET = 2048
# Keys of the worker itself and of the test functions, not of an execution. The queue's counters hash is one
# per queue, shared by every execution: it grows by a size class now and then as its numbers grow or as it
# turns from a listpack into a hash table, which no one execution leaves behind.
_NOT_THE_EXECUTIONS = ("rq:worker", "rq:clean", "test:", keys.counters(""))
# The execution's event log is not retained: it expires EVENT_LOG_TERMINAL_TTL s after the execution ended.
_EVENT_LOG = keys.execution_events("")


def _sizes(redis_conn) -> dict[bytes, int]:
    names = [k for k in redis_conn.scan_iter(count=1000) if not k.decode().startswith(_NOT_THE_EXECUTIONS)]
    return {name: redis_conn.execute_command("MEMORY", "USAGE", name, "SAMPLES", "0") for name in names}


def _left_by(redis_conn, run: Callable[[], str]) -> tuple[str, int, dict[str, int]]:
    """The bytes (MEMORY USAGE of every sample) that ``run``'s execution leaves in Redis once its event log
    has expired, with each key's share."""
    before = _sizes(redis_conn)
    execution_id = run()
    log = keys.execution_events(execution_id)
    assert 0 < redis_conn.ttl(log) <= keys.EVENT_LOG_TERMINAL_TTL
    grown = {name.decode(): size - before.get(name, 0) for name, size in _sizes(redis_conn).items()
             if not name.decode().startswith(_EVENT_LOG)}
    return execution_id, sum(grown.values()), {name: size for name, size in grown.items() if size}


def _run(redis_url, redis_conn, settings, workflow, data=None) -> str:
    execution_id = submit_execution(workflow, data, connection=redis_conn, settings=settings)
    _in_process_worker(redis_url, settings).work(burst=True, with_scheduler=False)
    return execution_id


def test_a_succeeded_and_a_failed_execution_each_leave_at_most_2_kb(redis_url, redis_conn, settings):
    inline = settings.with_overrides(isolation="inline")
    # The default number of retries, without the waits: a failed execution has made four attempts.
    retried = inline.with_overrides(retry_intervals=(0, 0, 0))
    for workflow, run_settings, outcome in ((trivial_workflow(), inline, "succeeded"),
                                            (failing_workflow(), retried, "failed")):
        _run(redis_url, redis_conn, run_settings, workflow, {"n": 0})  # what every execution shares exists now
        execution_id, size, by_key = _left_by(
            redis_conn, lambda w=workflow, s=run_settings: _run(redis_url, redis_conn, s, w, {"n": 1}))
        assert status_of(redis_conn, execution_id) == outcome
        assert size <= BUDGET, (outcome, size, by_key)
        # Its state and its RQ job, and entries of RQ's registry and of the search index of its status; no
        # results stream, no copy of the workflow.
        assert set(by_key) <= {keys.execution(execution_id), f"rq:job:{execution_id}",
                               f"rq:finished:{settings.queue}", f"rq:failed:{settings.queue}",
                               keys.search_status(outcome)}, by_key
        assert not redis_conn.exists(f"rq:results:{execution_id}")
    state = ExecutionControl(redis_conn, settings).get(execution_id)
    assert [a["status"] for a in state["attempts"]] == ["failed"] * 4
    assert all(a["error"] == {"message": "planned failure", "kind": "node", "nodeId": "boom"} and a["worker"]
               for a in state["attempts"])
    assert state["error"] == {"nodeId": "boom", "nodeType": "stop-and-error", "nodeName": "boom",
                              "message": "planned failure", "kind": "node"}


def test_executions_of_one_workflow_share_one_stored_document(redis_conn, settings):
    first = submit_execution(workflows.quick(), {"n": 1}, connection=redis_conn, settings=settings)
    second = submit_execution(workflows.quick(), {"n": 2}, connection=redis_conn, settings=settings)
    other = submit_execution(workflows.counted(), connection=redis_conn, settings=settings)
    stored = sorted(redis_conn.scan_iter(keys.document("*")))
    assert len(stored) == 2
    digests = [redis_conn.hget(keys.execution(i), "workflow").decode() for i in (first, second, other)]
    assert digests[0] == digests[1] != digests[2]
    text = redis_conn.get(keys.document(digests[0])).decode()
    assert digest_of(text) == digests[0]
    # The job names no document: its id is the execution's, whose state names the digest.
    job = Job.fetch(first, connection=redis_conn, serializer=SERIALIZER)
    assert job.func_name == "nodedrop_rq.jobs.run_execution" and not job.args and not job.kwargs


def test_the_workflow_document_outlives_every_execution_that_may_run_it(redis_url, redis_conn, settings):
    inline = settings.with_overrides(isolation="inline", retry_intervals=())
    execution_id = submit_execution(workflows.failing(), {"succeedOn": 99}, connection=redis_conn,
                                    settings=inline)
    document = keys.document(redis_conn.hget(keys.execution(execution_id), "workflow").decode())
    # Waiting: it may wait and run for the state TTL, then stay failed (and requeueable) for the failure TTL.
    assert redis_conn.ttl(document) >= redis_conn.ttl(keys.execution(execution_id)) + inline.failure_ttl - 5
    redis_conn.expire(document, 60)  # as if submitted long ago: the failure must raise it again
    _in_process_worker(redis_url, inline).work(burst=True, with_scheduler=False)
    assert status_of(redis_conn, execution_id) == "failed"
    assert redis_conn.ttl(document) >= max(redis_conn.ttl(keys.execution(execution_id)),
                                           redis_conn.ttl(f"rq:job:{execution_id}")) - 5
    # Another submit never shortens it.
    redis_conn.expire(document, 10 * inline.failure_ttl)
    submit_execution(workflows.failing(), connection=redis_conn, settings=inline)
    assert redis_conn.ttl(document) > 9 * inline.failure_ttl


def test_a_failed_execution_requeues_and_runs_with_rqs_registry_and_with_ours(redis_url, redis_conn, settings):
    inline = settings.with_overrides(isolation="inline", retry_intervals=())
    worker = _in_process_worker(redis_url, inline)
    for requeue in ("rq", "nodedrop-rq"):
        execution_id = submit_execution(workflows.failing(), {"succeedOn": 2, "tag": requeue},
                                        connection=redis_conn, settings=inline)
        worker.work(burst=True, with_scheduler=False)
        assert status_of(redis_conn, execution_id) == "failed"
        registry = FailedJobRegistry(inline.queue, connection=redis_conn, serializer=SERIALIZER)
        assert execution_id in registry.get_job_ids()
        job = Job.fetch(execution_id, connection=redis_conn, serializer=SERIALIZER)
        assert job.get_status() == "failed" and job.origin == inline.queue
        shown, _ = ExecutionControl(redis_conn, inline).show_failed(execution_id)
        assert shown.exc_string.startswith("Traceback") and "planned failure on attempt 1" in shown.exc_string
        if requeue == "rq":
            registry.requeue(execution_id)  # what `rq requeue` and rq-dashboard do
        else:
            ExecutionControl(redis_conn, inline).requeue(execution_id)  # `nodedrop-rq failed requeue`
        worker.work(burst=True, with_scheduler=False)
        state = ExecutionStore(redis_conn, inline).get(execution_id)
        assert state["status"] == "succeeded", (requeue, state)
        assert [a["status"] for a in state["attempts"]] == ["failed", "succeeded"]
        assert execution_id not in registry.get_job_ids()


def test_long_and_multibyte_values_are_stored_in_pieces_and_read_back_whole(redis_url, redis_conn, settings):
    inline = settings.with_overrides(isolation="inline")
    name = "Bestellungen prüfen – " + "äöü€" * 30  # pieces of 64 bytes end inside UTF-8 sequences
    workflow = dict(workflows.quick(), name=name)
    execution_id = _run(redis_url, redis_conn, inline, workflow, {"text": "€" * 100})
    assert all(len(value) <= 64 for value in redis_conn.hgetall(keys.execution(execution_id)).values())
    assert redis_conn.object("encoding", keys.execution(execution_id)) == b"listpack"
    state = ExecutionStore(redis_conn, inline).get(execution_id)
    assert state["status"] == "succeeded" and state["workflowName"] == name
    assert state["output"][0]["json"]["customData"] == {"text": "€" * 100}
