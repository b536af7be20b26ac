"""The HTTP service as a real subprocess (`nodedrop-rq serve`) on a free loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from nodedrop_rq.embedded_redis import free_port
from tests.conftest import ROOT, child_env, descendants, wait_for


class Service:
    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path, token: str | None) -> None:
        self.process = process
        self.port = port
        self.log = log
        self.base_url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.base_url, timeout=10, headers=headers)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.output()}")
            try:
                httpx.get(f"{self.base_url}/api/health", timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"serve did not answer within {timeout} s:\n{self.output()}")

    def children(self) -> list[int]:
        """Direct child processes (the worker pool in single-server mode)."""
        found = []
        for pid in descendants(self.pid):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == self.pid:
                found.append(pid)
        return found

    def submit(self, workflow: dict[str, Any], data: Any = None, **extra: Any) -> httpx.Response:
        body = {"workflow": workflow, **extra}
        if data is not None:
            body["input"] = data
        return self.http.post("/api/executions", json=body)

    def wait_status(self, execution_id: str, wanted: str | tuple[str, ...], timeout: float) -> dict[str, Any]:
        wanted = (wanted,) if isinstance(wanted, str) else wanted
        seen: dict[str, Any] = {}

        def reached() -> bool:
            response = self.http.get(f"/api/executions/{execution_id}")
            assert response.status_code == 200, response.text
            seen.update(response.json())
            return seen["status"] in wanted

        wait_for(reached, timeout, what=f"{execution_id} to be {wanted} (last seen: {seen.get('status')})")
        return seen

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            leftovers = descendants(self.pid)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                leftovers = [self.pid, *descendants(self.pid), *leftovers]
            for pid in leftovers:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if self.process.poll() is None:
                self.process.wait(10)


def launch(redis_url: str, log: Path, workers: int = 0, **env: str) -> Service:
    """Start `nodedrop-rq serve` on a free port and wait until it answers."""
    port = free_port()
    command = [sys.executable, "-m", "nodedrop_rq", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers)]
    process = subprocess.Popen(command, env=child_env(redis_url, **env), cwd=ROOT,
                               stdout=log.open("wb"), stderr=subprocess.STDOUT)
    service = Service(process, port, log, env.get("NODEDROP_API_TOKEN"))
    try:
        service.wait_ready()
    except AssertionError:
        service.stop()
        raise
    return service


@pytest.fixture
def start_service(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """``start_service(workers=0, redis_url=None, **env)``: start `nodedrop-rq serve` and wait until it
    answers. Every service (and its worker pool) is stopped at teardown."""
    services: list[Service] = []

    def start(workers: int = 0, redis_url_override: str | None = None, **env: str) -> Service:
        log = tmp_path / f"serve-{len(services)}.log"
        services.append(launch(redis_url_override or redis_url, log, workers, **env))
        return services[-1]

    yield start
    for service in services:
        service.stop()
