"""Fixtures for the schedule tests: `nodedrop-rq scheduler` processes (all killed in teardown) and the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis import Redis

from tests.conftest import ROOT, child_env


class SchedulerProcess:
    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def start_scheduler(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., SchedulerProcess]]:
    started: list[SchedulerProcess] = []

    def start(*args: str, interval: str = "0.5", **env: str) -> SchedulerProcess:
        log = tmp_path / f"scheduler-{len(started)}.log"
        process = subprocess.Popen([sys.executable, "-m", "nodedrop_rq", "scheduler", "--interval", interval, *args],
                                   env=child_env(redis_url, **env), cwd=ROOT, stdout=log.open("wb"),
                                   stderr=subprocess.STDOUT)
        started.append(SchedulerProcess(process, log))
        return started[-1]

    yield start
    for scheduler in started:
        if scheduler.process.poll() is None:
            scheduler.process.send_signal(signal.SIGTERM)
    for scheduler in started:
        try:
            scheduler.process.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(scheduler.process.pid, signal.SIGKILL)
            scheduler.process.wait(10)


def cli(redis_url: str, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nodedrop_rq", *args], env=child_env(redis_url, **env), cwd=ROOT,
                          input=stdin, capture_output=True, text=True, timeout=60)


def executions_by_firing(redis_conn: Redis, schedule_id: str = "*") -> dict[str, str]:
    """idempotency key (schedule:<id>:<firing time>) -> execution id, for every submitted firing."""
    out = {}
    for key in redis_conn.scan_iter(f"nodedrop:idempotency:schedule:{schedule_id}:*", count=1000):
        out[key.decode().split("nodedrop:idempotency:", 1)[1]] = redis_conn.get(key).decode()
    return out


def firing_times(redis_conn: Redis, schedule_id: str = "*") -> list[int]:
    return sorted(int(key.rsplit(":", 1)[1]) for key in executions_by_firing(redis_conn, schedule_id))


def execution_count(redis_conn: Redis) -> int:
    return sum(1 for _ in redis_conn.scan_iter("nodedrop:execution:*", count=1000))
