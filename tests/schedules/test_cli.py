"""`nodedrop-rq schedule add|list|remove` as subprocesses against a real redis-server."""

from __future__ import annotations

import json

import pytest

from nodedrop_rq import keys
from tests.conftest import EXAMPLES
from tests.schedules.conftest import cli
from tests.support import workflows

QUICK = json.dumps(workflows.quick())


def test_add_list_remove(redis_conn, redis_url):
    added = cli(redis_url, "schedule", "add", str(EXAMPLES / "order-routing.json"), "--cron", "*/5 * * * *",
                "--tz", "Europe/Berlin", "--input", '{"amount": 5}', "--name", "five", "--json")
    assert added.returncode == 0, added.stderr
    info = json.loads(added.stdout)
    assert (info["kind"], info["cron"], info["tz"], info["name"]) == ("cron", "*/5 * * * *", "Europe/Berlin", "five")
    once = cli(redis_url, "schedule", "add", "-", "--in", "2h", stdin=QUICK)
    assert once.returncode == 0 and "once" in once.stdout and "next run" in once.stdout
    text = cli(redis_url, "schedule", "list")
    assert text.returncode == 0 and "five" in text.stdout and "cron '*/5 * * * *' Europe/Berlin" in text.stdout
    assert "2 schedule(s)" in text.stdout
    listed = json.loads(cli(redis_url, "schedule", "list", "--json").stdout)
    assert [s["id"] for s in listed] == [info["id"], once.stdout.split()[0]]
    assert len(listed[0]["nextFires"]) == 3 and listed[1]["kind"] == "at"
    assert cli(redis_url, "schedule", "remove", info["id"]).returncode == 0
    missing = cli(redis_url, "schedule", "remove", info["id"])
    assert missing.returncode == 1 and "no schedule" in missing.stderr
    assert redis_conn.zcard(keys.SCHEDULED_JOBS) == 1


def test_at_without_offset_uses_tz(redis_url):
    added = cli(redis_url, "schedule", "add", "-", "--at", "2099-07-01T09:00:00", "--tz", "Europe/Berlin", "--json",
                stdin=QUICK)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["nextFire"] == "2099-07-01T07:00:00+00:00"


@pytest.mark.parametrize(("args", "message"), [
    (["--cron", "61 * * * *"], "invalid cron expression"),
    (["--cron", "every five minutes"], "invalid cron expression"),
    (["--cron", "*/5 * * * *", "--tz", "Mars/Olympus"], "unknown time zone"),
    (["--at", "2001-01-01T00:00:00+00:00"], "is in the past"),
    (["--at", "2099-01-01T00:00:00"], "no UTC offset"),
    (["--at", "next tuesday"], "invalid time"),
    (["--in", "soon"], "invalid delay"),
    (["--in", "-5s"], "invalid delay"),
    (["--in", "30s", "--tz", "UTC"], "--tz applies to --cron and --at"),
    (["--cron", "* * * * *", "--in", "5s"], "exactly one of"),
    ([], "exactly one of"),
    (["--in", "5s", "--input", "{nope"], "--input is not valid JSON"),
])
def test_invalid_schedules_are_refused_and_nothing_is_stored(redis_conn, redis_url, args, message):
    redis_conn.set("unrelated", "1")
    before = redis_conn.dbsize()
    done = cli(redis_url, "schedule", "add", "-", *args, stdin=QUICK)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert redis_conn.dbsize() == before


def test_an_invalid_workflow_is_refused_at_add_time_listing_its_problems(redis_conn, redis_url):
    done = cli(redis_url, "schedule", "add", "-", "--cron", "* * * * *",
               stdin='{"nodes": [{"id": "a", "type": "x"}, {"id": "a", "type": "set"}]}')
    assert done.returncode == 2
    assert "the workflow is invalid" in done.stderr and "unknown node type" in done.stderr
    assert redis_conn.dbsize() == 0
    not_json = cli(redis_url, "schedule", "add", "-", "--cron", "* * * * *", stdin="{")
    assert not_json.returncode == 2 and "not valid JSON" in not_json.stderr
    assert redis_conn.dbsize() == 0


def test_redis_unreachable_is_exit_3(redis_url):
    done = cli("redis://127.0.0.1:1/0", "schedule", "list")
    assert done.returncode == 3 and "cannot reach Redis" in done.stderr
