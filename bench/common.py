"""Shared by the benchmarks: processes, timing summaries, the trivial workflow, result files."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from redis import Redis

from tests.support.processes import descendants

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
BIN = Path(sys.executable).parent


def trivial_workflow() -> dict[str, Any]:
    """Three nodes, no delay or network: trigger -> set -> set."""
    def node(node_id: str, node_type: str, parameters: dict[str, Any]) -> dict[str, Any]:
        return {"id": node_id, "type": node_type, "name": node_id, "parameters": parameters}

    nodes = [node("start", "manual-trigger", {}),
             node("tag", "set", {"values": [{"keyValue": {"key": "tagged", "value": True}}]}),
             node("total", "set", {"values": [{"keyValue": {"key": "total", "value": "{{ $json.n * 2 }}"}}]})]
    connections = [{"id": f"c{i}", "sourceNodeId": a["id"], "sourceOutput": "main", "targetNodeId": b["id"],
                    "targetInput": "main"} for i, (a, b) in enumerate(zip(nodes, nodes[1:], strict=False))]
    return {"name": "trivial", "nodes": nodes, "connections": connections, "settings": {}}


def env_for(redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXECUTION_", "NODEDROP_", "WORKFLOW_"))}
    env.update({"REDIS_URL": redis_url, "PYTHONPATH": str(ROOT), "NODEDROP_LOG_LEVEL": "WARNING"})
    env.update(extra)
    return env


def start(command: list[str], redis_url: str, **extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, env=env_for(redis_url, **extra), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (warm shutdown), then SIGKILL for anything left below it."""
    leftovers = descendants(process.pid)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    for pid in leftovers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and every process below it, including the children they have
    already reaped (fork isolation's work horses, recycled worker processes)."""
    ticks = 0
    for each in [pid, *descendants(pid)]:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile: its parent's reaped-children total has it
        ticks += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def workers_registered(connection: Redis) -> int:
    return int(connection.scard("rq:workers"))


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def write_result(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}.json"
    out.write_text(json.dumps({"machine": machine(), **payload}, indent=2))
    return out
