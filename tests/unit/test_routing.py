"""EXECUTION_QUEUE_REDIS_URLS and EXECUTION_QUEUE_SHARDS: parsing, and what the router answers (no Redis)."""

from __future__ import annotations

import pytest

from nodedrop_rq.routing import QueueRouter, expand_queues, shard_index, shard_queue, worker_settings, workflow_key
from nodedrop_rq.settings import Settings, SettingsError

SENTINEL = "redis+sentinel://:master-pw@s1:26379,s2:26379/reports/0?sentinel_password=s-pw"


def settings(**env: str) -> Settings:
    return Settings.from_env({"REDIS_URL": "redis://home:6379/0", **env})


def test_the_map_takes_plain_and_sentinel_urls_whose_commas_do_not_split_entries():
    s = settings(EXECUTION_QUEUE_REDIS_URLS=f" orders = redis://a:6379/1 ,reports={SENTINEL}")
    assert s.queue_redis_urls == (("orders", "redis://a:6379/1"), ("reports", SENTINEL))
    assert "master-pw" not in repr(s)


@pytest.mark.parametrize(("value", "needle"), [
    ("orders", "entry 1 is not queue=redis-url"),
    ("orders=", "queue 'orders' has no URL"),
    ("=redis://a", "an empty queue name"),
    ("o=redis://a,o=redis://b", "queue 'o' is given twice"),
    ("o=http://a", "EXECUTION_QUEUE_REDIS_URLS (queue o): scheme 'http'"),
    ("o p=redis://a", "queue name 'o p'"),
    ("o=redis://a,", "a stray comma after the URL of queue 'o'"),
    ("o=redis+sentinel://:pw@s1:26379", "no master name"),
])
def test_a_bad_map_entry_is_named_without_echoing_passwords(value, needle):
    with pytest.raises(SettingsError) as error:
        settings(EXECUTION_QUEUE_REDIS_URLS=value)
    assert needle in str(error.value) and "pw" not in str(error.value)


@pytest.mark.parametrize(("value", "needle"), [
    ("bulk", "is not name=shard|shard"),
    ("bulk=a|a", "repeat a queue"),
    ("bulk=a,other=a", "repeat a queue"),
    ("bulk=a||b", "an empty queue name"),
    ("bulk=x|y,bulk=z", "given twice"),
])
def test_bad_shard_groups_are_refused(value, needle):
    with pytest.raises(SettingsError, match="EXECUTION_QUEUE_SHARDS") as error:
        settings(EXECUTION_QUEUE_SHARDS=value)
    assert needle in str(error.value)


def test_the_shard_hash_is_stable_across_processes_and_spreads_keys():
    # CRC-32 values, fixed: a release or a restarted process must send a workflow to the same shard.
    assert shard_index("123456789", 2**32) == 0xCBF43926  # the standard CRC-32 check value
    assert [shard_index(key, 4) for key in ("wf-1", "wf-2", "wf-3", "customer-42")] == [2, 0, 2, 1]
    assert {shard_index(f"workflow-{i}", 4) for i in range(100)} == {0, 1, 2, 3}
    s = settings(EXECUTION_QUEUE_SHARDS="bulk=bulk-0|bulk-1|bulk-2")
    assert shard_queue(s, "bulk", "wf-1") == f"bulk-{shard_index('wf-1', 3)}"
    assert shard_queue(s, "other", "wf-1") == "other"
    assert workflow_key({"workflow": {"id": "abc", "name": "n"}}) == "abc"
    assert workflow_key({"name": "only-name"}) == "only-name" and workflow_key([]) == ""


def test_the_router_answers_which_server_serves_a_queue_and_which_queues_a_server_has():
    s = settings(EXECUTION_QUEUE_REDIS_URLS="orders=redis://a:6379/0,audit=redis://a:6379/0,reports=redis://b:6379/0",
                 EXECUTION_QUEUE_SHARDS="bulk=bulk-0|bulk-1")
    router = QueueRouter(s)
    assert router.multi and [server.url for server in router.servers()] == [
        "redis://home:6379/0", "redis://a:6379/0", "redis://b:6379/0"]
    assert router.url_for("orders") == router.url_for("audit") == "redis://a:6379/0"
    assert router.connection_for("orders") is router.connection_for("audit")  # one client per server
    assert router.url_for("anything-else") == "redis://home:6379/0"
    home, a, _ = router.servers()
    assert home.home and home.queues == ("executions", "bulk-0", "bulk-1")
    assert router.queues_on(a, [b"orders", b"reports", b"new"]) == ["audit", "orders"]  # reports is on b
    assert router.queues_on(home, [b"new"]) == ["bulk-0", "bulk-1", "executions", "new"]
    assert not QueueRouter(settings()).multi


def test_a_worker_gets_the_redis_of_its_queues_or_is_refused():
    s = settings(EXECUTION_QUEUE_REDIS_URLS="orders=redis://a:6379/0,audit=redis://a:6379/0",
                 EXECUTION_QUEUE_SHARDS="bulk=bulk-0|bulk-1")
    moved, names = worker_settings(s, ["orders", "audit"])
    assert moved.redis_url == "redis://a:6379/0" and names == ["orders", "audit"]
    assert worker_settings(s, [])[0].redis_url == "redis://home:6379/0"
    assert expand_queues(s, ["bulk", "bulk-0", "x"]) == ["bulk-0", "bulk-1", "x"]
    with pytest.raises(SettingsError, match="different Redis servers.*start one worker per server"):
        worker_settings(s, ["orders", "executions"])
