"""``nodedrop-rq demo``: the whole system on one machine, end to end, then stopped again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from nodedrop_rq.connection import describe_redis_url, redis_from_settings
from nodedrop_rq.control import ExecutionControl
from nodedrop_rq.embedded_redis import EmbeddedRedis
from nodedrop_rq.settings import Settings
from nodedrop_rq.state import TERMINAL
from nodedrop_rq.stats import queue_stats
from nodedrop_rq.submit import submit_execution

EXAMPLES = Path(__file__).parent / "examples"
DEADLINE_SECONDS = 120


def run_demo(settings: Settings, concurrency: int = 2) -> int:
    redis = None
    if not settings.redis_url_given:
        redis = EmbeddedRedis()
        click.echo("starting a private redis-server (set REDIS_URL to use yours) ...")
        settings = settings.with_overrides(redis_url=redis.start())
    click.echo(f"redis: {describe_redis_url(settings.redis_url)}")
    # Before the pool starts: an unreachable or refusing REDIS_URL is one line from the CLI (exit 3 or 4).
    probe = redis_from_settings(settings, socket_timeout=5)
    try:
        probe.ping()
    finally:
        probe.close()
    env = dict(os.environ, REDIS_URL=settings.redis_url)
    pool = subprocess.Popen([sys.executable, "-m", "nodedrop_rq", "worker", "--concurrency", str(concurrency)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        click.echo(f"started a worker pool of {concurrency} ExecutionWorker processes (pid {pool.pid})")
        return _submit_and_watch(settings)
    finally:
        pool.send_signal(signal.SIGTERM)
        try:
            pool.wait(30)
        except subprocess.TimeoutExpired:
            pool.kill()
        if redis is not None:
            redis.cleanup()
        click.echo("stopped the worker pool" + (" and redis-server" if redis else ""))


def _submit_and_watch(settings: Settings) -> int:
    connection = redis_from_settings(settings, socket_timeout=10)
    control = ExecutionControl(connection, settings)
    submitted: dict[str, str] = {}
    for path in sorted(EXAMPLES.glob("*.json")):
        document = json.loads(path.read_text())
        submitted[submit_execution(document, {"demo": True}, connection=connection, settings=settings)] = path.name
        click.echo(f"submitted {path.name}")
    click.echo("")
    seen: dict[str, str] = {}
    deadline = time.monotonic() + DEADLINE_SECONDS
    states: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        for execution_id, name in submitted.items():
            current = control.get(execution_id)
            states[execution_id] = current
            line = _describe(current)
            if seen.get(execution_id) != line:
                seen[execution_id] = line
                click.echo(f"  {name:<32} {line}")
        if all(s["status"] in TERMINAL for s in states.values()):
            break
        time.sleep(0.2)
    click.echo("\nsummary:")
    ok = True
    for execution_id, name in submitted.items():
        current = states[execution_id]
        expected = "failed" if "fail" in name else "succeeded"
        ok &= current["status"] == expected
        click.echo(f"  {name:<32} {current['status']:<10} attempts {current.get('attempt')}/"
                   f"{current.get('maxAttempts')}  (expected {expected})")
    for row in queue_stats(connection, [settings.queue]):
        click.echo(f"\nqueue {row.queue}: waiting {row.waiting}, active {row.active}, "
                   f"completed {row.completed}, failed {row.failed}")
    click.echo("demo " + ("finished as expected" if ok else "did NOT finish as expected"))
    return 0 if ok else 1


def _describe(current: dict[str, Any]) -> str:
    status = current["status"]
    attempt = f"attempt {current.get('attempt') or 0}/{current.get('maxAttempts')}"
    if status == "running" and current.get("currentNode"):
        node = (current.get("nodes") or {}).get(current["currentNode"], {})
        return f"{status:<10} {attempt}  node {node.get('name') or current['currentNode']}"
    if status == "retrying":
        return f"{status:<10} {attempt}  next try at {current.get('nextRetryAt')}"
    if status == "failed":
        return f"{status:<10} {attempt}  {(current.get('error') or {}).get('message')}"
    return f"{status:<10} {attempt}"
