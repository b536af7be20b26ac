"""Webhook calls per second (``responseMode: onReceived``) next to ``POST /api/executions``, over loopback.

    python -m bench.webhooks [--seconds 10] [--connections 16] [--client wrk|python]

Starts its own redis-server and ``nodedrop-rq serve --workers 0`` (one API process, no workers: what is
measured is the intake, each call validated, stored and enqueued; the executions wait in the queue), stores
the 3-node trivial workflow with a webhook trigger in front, then drives both routes for ``--seconds``
each with ``--connections`` keep-alive connections: with Debian's ``wrk`` when it is installed
(``apt-get install -y wrk``), else with an asyncio httpx client in this process (which then shares the CPU
with the service, so its figures are lower bounds). Both bodies are small (the webhook's ``{"n": 1}``; the
submit's carries the workflow, about 700 bytes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from redis import Redis

from bench.common import percentile, start, stop, trivial_workflow, wait_until, write_result
from nodedrop_rq.embedded_redis import EmbeddedRedis, free_port
from nodedrop_rq.settings import Settings
from nodedrop_rq.workflows_store import WorkflowStore

WEBHOOK = "bench-hook"


def webhook_workflow() -> dict[str, Any]:
    document = trivial_workflow()
    document["nodes"][0] = {"id": "start", "type": "webhook-trigger", "name": "start",
                            "parameters": {"webhookUrl": WEBHOOK, "httpMethod": "POST", "responseMode": "onReceived"}}
    return document


def run_wrk(url: str, body: bytes, seconds: int, connections: int) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(body.decode())}\n'
                     'wrk.headers["Content-Type"] = "application/json"\n')
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", script.name, url],
                         capture_output=True, text=True, timeout=seconds + 60).stdout
    Path(script.name).unlink()

    def millis(label: str) -> float:
        match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if not match:
            return float("nan")
        return float(match.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[match.group(2)]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": millis("50%"), "p99_ms": millis("99%"), "non_2xx": int(errors.group(1)) if errors else 0,
            "client": "wrk"}


def run_python(url: str, body: bytes, seconds: int, connections: int) -> dict[str, Any]:
    latencies: list[float] = []
    failures = 0

    async def worker(client: httpx.AsyncClient, deadline: float) -> None:
        nonlocal failures
        while time.monotonic() < deadline:
            began = time.perf_counter()
            response = await client.post(url, content=body, headers={"content-type": "application/json"})
            latencies.append((time.perf_counter() - began) * 1000)
            failures += response.status_code >= 300

    async def main() -> float:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            began = time.monotonic()
            await asyncio.gather(*(worker(client, began + seconds) for _ in range(connections)))
            return time.monotonic() - began

    elapsed = asyncio.run(main())
    return {"requests_per_second": round(len(latencies) / elapsed, 1), "p50_ms": round(percentile(latencies, 50), 2),
            "p99_ms": round(percentile(latencies, 99), 2), "non_2xx": failures, "client": "python httpx"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--client", choices=("wrk", "python"), default="wrk" if shutil.which("wrk") else "python")
    args = parser.parse_args()
    drive = run_wrk if args.client == "wrk" else run_python
    rows = []
    with EmbeddedRedis() as server:
        connection = Redis.from_url(server.url)
        WorkflowStore(connection, Settings(redis_url=server.url)).put("bench", webhook_workflow())
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        service = start([sys.executable, "-m", "nodedrop_rq", "serve", "--host", "127.0.0.1", "--port", str(port),
                         "--workers", "0"], server.url)
        try:
            def up() -> bool:
                try:
                    return httpx.get(f"{base}/api/health", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(up, 30, "the service")
            submit_body = json.dumps({"workflow": trivial_workflow(), "input": {"n": 1}}).encode()
            for name, url, body in (("POST /webhook/{id} (onReceived)", f"{base}/webhook/{WEBHOOK}", b'{"n": 1}'),
                                    ("POST /api/executions", f"{base}/api/executions", submit_body)):
                drive(url, body, 2, args.connections)  # warm-up
                rows.append({"route": name, "body_bytes": len(body), **drive(url, body, args.seconds,
                                                                             args.connections)})
            queued = connection.llen("rq:queue:executions")
        finally:
            stop(service)
    print(f"\n{'route':<34}{'calls/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}   client: {rows[0]['client']}, "
          f"{args.connections} connections, {args.seconds} s each")
    for row in rows:
        print(f"{row['route']:<34}{row['requests_per_second']:>10.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
              f"{row['non_2xx']:>9}")
    print(f"executions queued in total (warm-ups included): {queued}")
    path = write_result("webhooks", {"seconds": args.seconds, "connections": args.connections, "rows": rows,
                                     "queued": queued})
    print(f"written to {path}")


if __name__ == "__main__":
    main()
