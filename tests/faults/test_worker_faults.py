"""A steady stream of executions while worker pools are SIGKILLed or scaled down.

At the end every execution must be in exactly one terminal state, the counted side effect must have run
as at-least-once retries promise, and the exporter's counters must agree with the states.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from redis import Redis

from nodedrop_rq import counters, keys
from nodedrop_rq.control import ExecutionControl
from nodedrop_rq.state import TERMINAL
from nodedrop_rq.submit import submit_execution
from nodedrop_rq.worker import POOL_PID_FIELD
from tests.conftest import wait_for
from tests.support import workflows

FAST = {"EXECUTION_RETRY_INTERVALS": "1,1,1"}


def _submit_mix(connection: Redis, settings, count: int, offset: int = 0) -> dict[str, str]:
    """Every 5th always fails, every 7th is slow (2 s), the rest take 0.3 s."""
    kinds = {}
    for i in range(offset, offset + count):
        tag = f"e{i}"
        if i % 5 == 4:
            wf, data, kind = workflows.failing(), {"tag": tag}, "fails"
        else:
            wf, data, kind = workflows.counted(), {"tag": tag, "sleep": 2 if i % 7 == 3 else 0.3}, "ok"
        kinds[submit_execution(wf, data, connection=connection, settings=settings)] = f"{kind}:{tag}"
    return kinds


def _account(connection: Redis, settings, kinds: dict[str, str]) -> dict[str, int]:
    control = ExecutionControl(connection, settings)
    figures = {"executions": len(kinds), "succeeded": 0, "failed": 0, "lost": 0, "duplicated_side_effects": 0,
               "reruns_after_faults": 0}
    for execution_id, label in kinds.items():
        kind, tag = label.split(":")
        runs = int(connection.get(f"test:runs:{tag}") or 0)
        # Lost: the state is gone, or it says succeeded although the side effect never ran.
        if not connection.exists(keys.execution(execution_id)):
            figures["lost"] += 1
            continue
        if kind == "ok" and runs == 0:
            figures["lost"] += 1
        state = control.get(execution_id)
        assert state["status"] in TERMINAL, (execution_id, state["status"])
        figures[state["status"]] += 1
        if kind == "fails":
            assert state["status"] == "failed"
            assert len(state["attempts"]) == state["maxAttempts"] == 4
            continue
        assert state["status"] == "succeeded", (execution_id, state["error"])
        if runs == 0:
            continue
        attempts = state["attempts"]
        # At least once; more only when an attempt was cut off by a fault (each such attempt failed).
        assert 1 <= runs <= len(attempts), (tag, runs, attempts)
        assert [a["status"] for a in attempts][-1] == "succeeded"
        assert all(a["status"] == "failed" for a in attempts[:-1])
        figures["reruns_after_faults"] += len(attempts) - 1
        figures["duplicated_side_effects"] += max(0, runs - 1)
    raw = counters.decode(connection.hgetall(keys.counters(settings.queue)))
    assert int(raw.get(counters.COMPLETED, 0)) == figures["succeeded"]
    assert int(raw.get(counters.FAILED, 0)) == figures["failed"]
    return figures


def _running_on(connection: Redis, pool_pid: int) -> set[str]:
    """Ids of the jobs the workers of the pool with this supervisor pid are running now."""
    running = set()
    for key in connection.smembers("rq:workers"):
        pid = connection.hget(key, POOL_PID_FIELD)
        if pid is not None and int(pid) == pool_pid:
            # RQ 3 lists a worker's executions as "<job id>:<execution id>" in rq:worker:<name>:executions.
            running |= {member.decode().split(":")[0] for member in connection.smembers(key + b":executions")}
    return running


def _ended(connection: Redis, kinds: dict[str, str]) -> bool:
    """Every execution is terminal, or its state is gone (which _account then counts as lost)."""
    statuses = [connection.hget(keys.execution(i), "status") for i in kinds]
    return all(s is None or s.decode() in TERMINAL for s in statuses)


def _record(path: Path, name: str, figures: dict[str, int]) -> None:
    # Under the test's tmp path, never the source tree; printed so that `pytest -s` shows the figures.
    path.write_text(json.dumps({name: figures}, indent=2))
    print(f"{name}: {json.dumps(figures)}")


def test_the_account_counts_lost_executions(redis_conn, settings):
    """_account's `lost` is computed: a state that vanished, and a success whose side effect never ran."""
    kinds = _submit_mix(redis_conn, settings, 2)  # e0, e1: both "ok" (0.3 s)
    gone, kept = list(kinds)
    redis_conn.delete(keys.execution(gone))
    redis_conn.hset(keys.execution(kept), mapping={"status": "succeeded", "attempt": 1})
    redis_conn.hset(keys.counters(settings.queue), "completed", 1)
    assert _account(redis_conn, settings, kinds)["lost"] == 2


@pytest.mark.parametrize("isolation", ["fork", "supervised"])
def test_sigkilled_pools_lose_nothing(start_pool, redis_conn, settings, isolation, tmp_path):
    fast = settings.with_overrides(retry_intervals=(1, 1, 1))
    env = dict(FAST, EXECUTION_ISOLATION=isolation)
    start_pool(concurrency=2, **env)
    kinds: dict[str, str] = {}
    kills = 0
    for round_ in range(2):  # each round kills a busy pool; two show it happening again after a recovery
        victim = start_pool(concurrency=2, **env)
        wait_for(lambda: len(redis_conn.smembers("rq:workers")) >= 4, 20, what="victim pool to register")
        # Three slow ones first: with four workers, at most two of them the keeper's, the victim's
        # workers take at least one, and it is still running when the pool is killed.
        slow = {}
        for n in range(3):
            tag = f"s{round_}-{n}"
            slow[submit_execution(workflows.counted(), {"tag": tag, "sleep": 3}, connection=redis_conn,
                                  settings=fast)] = f"ok:{tag}"
        kinds.update(slow)
        kinds.update(_submit_mix(redis_conn, fast, 10, offset=round_ * 10))
        wait_for(lambda pid=victim.pid, ids=set(slow): _running_on(redis_conn, pid) & ids, 20, interval=0.05,
                 what="the victim pool to run a slow execution")
        victim.kill_all()
        kills += 1
    wait_for(lambda: _ended(redis_conn, kinds), 150, interval=0.5, what="every execution to end")
    figures = _account(redis_conn, fast, kinds)
    figures["pools_sigkilled"] = kills
    assert figures["lost"] == 0
    assert figures["reruns_after_faults"] >= kills  # each kill cut off at least one running execution
    _record(tmp_path / "figures.json", "sigkill" if isolation == "fork" else f"sigkill-{isolation}", figures)


def test_scale_down_with_sigterm_finishes_running_executions(start_pool, redis_conn, settings, tmp_path):
    fast = settings.with_overrides(retry_intervals=(1, 1, 1))
    keeper = start_pool(concurrency=1, **FAST)
    leaving = [start_pool(concurrency=2, **FAST) for _ in range(2)]
    wait_for(lambda: len(redis_conn.smembers("rq:workers")) >= 5, 20, what="pools to register")
    kinds = _submit_mix(redis_conn, fast, 20)
    # The leaving pools are busy when they get SIGTERM: a warm shutdown has something to finish.
    wait_for(lambda: any(_running_on(redis_conn, pool.pid) for pool in leaving), 20, interval=0.05,
             what="a leaving pool to run an execution")
    started = time.monotonic()
    codes = [pool.terminate(timeout=60) for pool in leaving]
    took = time.monotonic() - started
    assert codes == [0, 0]
    assert took < 30  # within compose's stop_grace_period for these short executions
    wait_for(lambda: _ended(redis_conn, kinds), 120, interval=0.5, what="every execution to end")
    figures = _account(redis_conn, fast, kinds)
    assert figures["reruns_after_faults"] == 0  # a warm shutdown interrupts nothing
    assert keeper.process.poll() is None
    figures["pools_sigtermed"] = 2
    figures["shutdown_seconds"] = round(took, 1)
    _record(tmp_path / "figures.json", "sigterm", figures)
