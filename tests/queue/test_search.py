"""Execution search against a real redis-server: thousands of executions (submitted, not run; some moved
on by the real transition scripts), filters, cursor paging, and a query's Redis cost against the number
of stored executions."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from redis import Redis

from nodedrop_rq import keys, search
from nodedrop_rq.execution import status
from nodedrop_rq.execution.transitions import Transitions
from nodedrop_rq.rq_integration import names
from nodedrop_rq.settings import Settings
from nodedrop_rq.submit import submit_execution
from tests.conftest import child_env
from tests.support import workflows

WORKFLOWS = ("wf-a", "wf-b", None)


@dataclass
class Store:
    """Executions submitted here, in creation order, with the status the test moved each one to."""

    connection: Redis
    settings: Settings
    records: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.transitions = Transitions(self.connection, self.settings, failed_registry=names.failed_registry)
        self._tokens = itertools.count()

    def add(self, count: int) -> list[dict]:
        added = []
        for i in range(count):
            workflow_id = WORKFLOWS[(len(self.records) + i) % len(WORKFLOWS)]
            document = workflows.quick()
            if workflow_id:
                document["id"] = workflow_id
            execution_id = submit_execution(document, connection=self.connection, settings=self.settings)
            added.append({"id": execution_id, "workflowId": workflow_id, "status": status.QUEUED})
        self.records += added
        return added

    def move(self, record: dict, target: str) -> None:
        queue = self.settings.queue
        if target == status.CANCELLED:
            assert self.transitions.cancel_waiting(record["id"], queue, 0)
        else:
            if record["status"] != status.RUNNING:
                record["token"] = f"token-{next(self._tokens)}"
                assert self.transitions.start(record["id"], queue, "w", record["token"]).began
            if target != status.RUNNING:
                assert self.transitions.finish(record["id"], queue, attempt=1, token=record["token"], target=target)
        record["status"] = target

    def expected(self, status_: str | None = None, workflow_id: str | None = None) -> list[str]:
        return [r["id"] for r in reversed(self.records)
                if status_ in (None, r["status"]) and workflow_id in (None, r["workflowId"])]


@pytest.fixture(scope="module")
def store(redis_server) -> Iterator[Store]:
    connection = Redis.from_url(redis_server.url)
    connection.flushall()
    settings = Settings.from_env(child_env(redis_server.url))
    found = Store(connection, settings)
    found.add(1200)
    # Every status, through the real scripts: 1 in 4 succeeded, 1 in 8 failed, 1 in 16 cancelled or running.
    for n, record in enumerate(found.records):
        target = {0: status.SUCCEEDED, 1: status.FAILED, 2: status.CANCELLED, 3: status.RUNNING}.get(n % 16 % 5)
        if n % 16 < 4 and target:
            found.move(record, target)
    yield found
    connection.close()


def walk(store: Store, limit: int, between_pages=None, **filters) -> list[str]:
    seen: list[str] = []
    cursor = None
    for _ in range(10_000):
        page = search.search(store.connection, store.settings, limit=limit, cursor=cursor, **filters)
        assert len(page.executions) <= limit
        seen += [e["id"] for e in page.executions]
        cursor = page.next_cursor
        if cursor is None:
            return seen
        if between_pages:
            between_pages()
    raise AssertionError("paging did not end")


def test_pages_cover_every_execution_once_newest_first(store):
    seen = walk(store, limit=97)
    assert len(seen) == len(set(seen)) == len(store.records)
    assert seen == store.expected()


@pytest.mark.parametrize(("status_", "workflow_id"), [
    (status.QUEUED, None), (status.SUCCEEDED, None), (status.FAILED, None), (status.CANCELLED, None),
    (status.RUNNING, None), (None, "wf-a"), (None, "wf-b"), (status.SUCCEEDED, "wf-a"), (status.FAILED, "wf-b"),
    (status.RETRYING, None), (None, "no-such-workflow"),
])
def test_filters_by_status_and_workflow(store, status_, workflow_id):
    expected = store.expected(status_, workflow_id)
    assert walk(store, limit=50, status=status_, workflow_id=workflow_id) == expected


def test_since_and_until_bound_the_creation_time(store):
    created = {e["id"]: e["createdAt"] for e in search.search(store.connection, store.settings, limit=1000).executions}
    ids = store.expected()[:1000]
    # A window in the middle of the stored executions: since inclusive, until exclusive.
    newest, oldest = _moment(created[ids[100]]), _moment(created[ids[700]])
    got = walk(store, limit=64, since=oldest, until=newest)
    want = [i for i in ids if oldest <= _moment(created[i]) < newest]
    assert got == want and len(want) > 500
    assert search.search(store.connection, store.settings, until=oldest - timedelta(days=365)).executions == []


def test_status_index_moves_with_each_applied_transition_only(store):
    record = next(r for r in store.records if r["status"] == status.QUEUED)
    store.move(record, status.RUNNING)
    assert _indexed(store, record["id"]) == {status.RUNNING}
    store.move(record, status.SUCCEEDED)
    assert _indexed(store, record["id"]) == {status.SUCCEEDED}
    # A refused (stale) write moves nothing: no index disagrees with the state.
    assert not store.transitions.finish(record["id"], store.settings.queue, attempt=1, token="stale",
                                        target=status.FAILED)
    assert _indexed(store, record["id"]) == {status.SUCCEEDED}
    for status_ in status.ALL:
        index = {m.decode() for m in store.connection.zrange(keys.search_status(status_), 0, -1)}
        assert index == set(store.expected(status_))


def test_pages_stay_stable_while_executions_are_submitted(store):
    before = store.expected()
    seen = walk(store, limit=150, between_pages=lambda: store.add(7))
    assert seen == before  # the newer ones come before the cursor: no page shifts, nothing twice
    assert walk(store, limit=500)[:7] == store.expected()[:7]


def test_executions_with_the_same_creation_time_are_paged_by_id(store):
    # Ties on the score (submits within the same clock tick) are told apart by id across pages.
    tied = store.add(30)
    index = keys.search_status(status.QUEUED)
    scores = {r["id"]: store.connection.zscore(index, r["id"]) for r in tied}
    store.connection.zadd(index, dict.fromkeys(scores, scores[tied[0]["id"]]))
    try:
        for limit in (3, 7):
            seen = walk(store, limit=limit)
            assert len(seen) == len(set(seen)) and sorted(seen) == sorted(store.expected())
            assert seen[:30] == sorted(scores, reverse=True)  # newest first; equal times by id
    finally:
        store.connection.zadd(index, scores)


def test_bad_filters_are_refused_with_the_parameter(store):
    for kwargs, parameter in [({"status": "done"}, "status"), ({"limit": 0}, "limit"),
                              ({"cursor": "%%%"}, "cursor"), ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
                              ({"since": datetime(2025, 1, 1)}, "since"), ({"workflow_id": "x" * 201}, "workflowId")]:
        with pytest.raises(search.SearchInvalid) as caught:
            search.search(store.connection, store.settings, **kwargs)
        assert caught.value.parameter == parameter


def test_a_querys_redis_cost_does_not_grow_with_the_stored_executions(store):
    """The same queries at about 1,300 and 5,300 stored executions issue the same Redis commands, the
    same number of times, and read index ranges of the same size."""

    def cost() -> tuple[dict[str, int], list[int]]:
        sizes = []
        store.connection.config_resetstat()
        # Filters with two full pages in both sizes: the same work is asked of both.
        for filters in ({}, {"status": status.QUEUED}, {"workflow_id": "wf-b"},
                        {"status": status.QUEUED, "workflow_id": "wf-a"}):
            first = search.search(store.connection, store.settings, limit=50, **filters)
            second = search.search(store.connection, store.settings, limit=50, cursor=first.next_cursor, **filters)
            sizes += [len(first.executions), len(second.executions)]
        stats = store.connection.info("commandstats")
        calls = {name: row["calls"] for name, row in stats.items()
                 if not name.startswith(("cmdstat_info", "cmdstat_config"))}
        return calls, sizes

    small = cost()
    store.add(4000)
    for record in store.records[-4000::16]:
        store.move(record, status.SUCCEEDED if record["workflowId"] != "wf-a" else status.FAILED)
    assert sum(store.connection.zcard(keys.search_status(s)) for s in status.ALL) > 5000
    large = cost()
    assert large == small
    assert small[1] == [50] * 8
    # Per page: a trim and a range per index read (six without a status), one HMGET per entry read.
    assert small[0]["cmdstat_hmget"] == 8 * 51
    assert small[0]["cmdstat_zrevrangebyscore"] == small[0]["cmdstat_zremrangebyscore"] == 2 * (6 + 1 + 6 + 1)


def test_expired_states_leave_the_index_that_meets_them(store):
    gone = store.records[-40:-20]
    for record in gone:
        store.connection.delete(keys.execution(record["id"]))  # as their TTL would
    store.records = [r for r in store.records if r not in gone]
    assert walk(store, limit=25) == store.expected()
    assert walk(store, limit=25, status=status.QUEUED) == store.expected(status.QUEUED)
    for key in [keys.search_status(s) for s in status.ALL]:
        assert not any(store.connection.zscore(key, r["id"]) for r in gone)
    # Entries older than any execution can live are trimmed by score, in the same query.
    ancient = 1_000_000.0
    store.connection.zadd(keys.search_status(status.SUCCEEDED), {"ancient": ancient})
    search.search(store.connection, store.settings, limit=1)
    assert store.connection.zscore(keys.search_status(status.SUCCEEDED), "ancient") is None


def _indexed(store: Store, execution_id: str) -> set[str]:
    return {s for s in status.ALL if store.connection.zscore(keys.search_status(s), execution_id) is not None}


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_the_list_command_filters_and_pages_like_the_api(redis_conn, settings, monkeypatch):
    import json

    from click.testing import CliRunner

    from nodedrop_rq import settings as settings_module
    from nodedrop_rq.cli.queue_commands import list_executions

    monkeypatch.setattr(settings_module, "_configured", settings)  # the CLI's settings, restored afterwards
    ids = [submit_execution(workflows.quick(), {"n": n}, connection=redis_conn, settings=settings) for n in range(5)]
    runner = CliRunner()

    def listed(*args: str) -> dict:
        result = runner.invoke(list_executions, [*args, "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    first = listed("--status", "queued", "--limit", "3")
    assert [e["id"] for e in first["executions"]] == ids[::-1][:3]  # newest first
    rest = listed("--status", "queued", "--limit", "3", "--cursor", first["nextCursor"])
    assert [e["id"] for e in rest["executions"]] == ids[::-1][3:] and rest["nextCursor"] is None
    assert listed("--status", "succeeded")["executions"] == []
    text = runner.invoke(list_executions, ["--limit", "2"], catch_exceptions=False)
    assert text.exit_code == 0 and ids[-1] in text.stdout and "more: --cursor" in text.stderr
    bad = runner.invoke(list_executions, ["--since", "yesterday"])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: --since")
