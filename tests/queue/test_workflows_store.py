"""Stored workflows against a real redis-server: versions, paging, the webhook index, runs by id."""

from __future__ import annotations

import pytest

from nodedrop_rq import keys
from nodedrop_rq.schedules import ScheduleStore, every_schedule
from nodedrop_rq.workflow import WorkflowInvalid
from nodedrop_rq.workflows_store import WebhookTaken, WorkflowNotFound, WorkflowStore
from tests.support import workflows


def hooked(path: str, marker: str = "v1", method: str = "POST") -> dict:
    trigger = workflows.node("hook", "webhook-trigger", {"webhookUrl": path, "httpMethod": method})
    return workflows.chain(f"hooked-{marker}", trigger, workflows.set_value("mark", "version", marker))


def test_versions_change_with_the_document_and_an_identical_put_keeps_it(redis_conn, settings):
    store = WorkflowStore(redis_conn, settings)
    first = store.put("orders", {"version": "1.0", "workflow": hooked("p-1")})  # with its export envelope
    assert (first.version, first.changed, first.name) == (1, True, "hooked-v1")
    again = store.put("orders", hooked("p-1"))
    assert (again.version, again.changed, again.hash) == (1, False, first.hash)
    second = store.put("orders", hooked("p-1", "v2"))
    assert second.version == 2 and second.hash != first.hash and second.created_at == first.created_at
    assert store.get("orders").document["name"] == "hooked-v2"
    assert store.current("orders")[1:] == (2, second.hash)


def test_the_webhook_index_follows_puts_and_deletes_and_refuses_a_taken_webhook(redis_conn, settings):
    store = WorkflowStore(redis_conn, settings)
    store.put("a", hooked("shared"))
    with pytest.raises(WebhookTaken) as taken:
        store.put("b", hooked("shared"))
    assert taken.value.owner == "a" and store.get("b") is None
    store.put("b", hooked("shared", method="GET"))  # the same path with another method is another webhook
    assert store.webhook_owners("shared") == {"POST": "a", "GET": "b"}
    store.put("a", hooked("moved"))
    assert store.webhook_owners("shared") == {"GET": "b"} and store.webhook_owners("moved") == {"POST": "a"}
    assert store.delete("a") and not store.delete("a")
    assert store.webhook_owners("moved") == {} and redis_conn.exists(keys.workflow("a")) == 0


def test_every_problem_is_listed_and_nothing_is_stored(redis_conn, settings):
    bad = hooked("")
    bad["nodes"].append({"id": "x", "type": "bogus", "name": "X", "parameters": {}})
    with pytest.raises(WorkflowInvalid) as invalid:
        WorkflowStore(redis_conn, settings).put("bad", bad)
    paths = {p.path for p in invalid.value.problems}
    assert {"nodes[2].type", "nodes[0].parameters.webhookUrl"} <= paths
    with pytest.raises(WorkflowInvalid):
        WorkflowStore(redis_conn, settings).put("no spaces", workflows.quick())
    assert redis_conn.dbsize() == 0


def test_paging_in_id_order_with_a_cursor(redis_conn, settings):
    store = WorkflowStore(redis_conn, settings)
    for number in range(7):
        store.put(f"w{number}", workflows.quick())
    seen, cursor = [], None
    while True:
        page, cursor = store.list(3, cursor)
        seen += [w.id for w in page]
        if cursor is None:
            break
    assert seen == [f"w{n}" for n in range(7)]
    with pytest.raises(ValueError):
        store.list(0)


def test_runs_record_the_workflow_id_and_version(redis_conn, settings):
    store = WorkflowStore(redis_conn, settings)
    store.put("runme", {**workflows.quick(), "id": "the-documents-own-id"})
    execution_id = store.run("runme", {"n": 1})
    state = redis_conn.hgetall(keys.execution(execution_id))
    assert state[b"workflowId"] == b"runme" and state[b"workflowVersion"] == b"1"  # the stored id wins
    assert redis_conn.zscore(keys.search_workflow_status("runme", "queued"), execution_id) is not None
    with pytest.raises(WorkflowNotFound):
        store.run("missing")


def test_a_schedule_can_name_a_stored_workflow(redis_conn, settings):
    schedules = ScheduleStore(redis_conn, settings)
    with pytest.raises(WorkflowInvalid, match="no stored workflow"):
        schedules.add(every_schedule("60s"), None, None, workflow_id="missing")
    WorkflowStore(redis_conn, settings).put("nightly", workflows.quick())
    schedule_id = schedules.add(every_schedule("60s"), None, {"n": 1}, workflow_id="nightly")
    info = schedules.get(schedule_id)
    assert (info.workflow_id, info.workflow_name) == ("nightly", "quick")
