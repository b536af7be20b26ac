"""Running the service: uvicorn in this process and, in single-server mode, a worker pool child.

Single-server mode (``nodedrop-rq serve --workers N``, N > 0) starts ``python -m nodedrop_rq worker
--concurrency N`` as a child process once the HTTP socket is bound, and starts it again (after 1, 2, 4 ...
up to 30 s) whenever it dies. The child runs in its own session, so a terminal's Ctrl-C reaches only
this process. On SIGTERM or SIGINT, uvicorn stops taking requests and finishes the ones in flight while
the pool gets exactly one SIGTERM (a warm shutdown: running executions finish); this process exits 0
once both are done. A second SIGTERM would make RQ kill running executions, so further signals are
only logged; the pool gets a second one only if it outlives EXECUTION_JOB_TIMEOUT + 30 s.

This process never runs a workflow: the pool child does.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import subprocess
import sys
import time
from types import FrameType

import uvicorn

from nodedrop_rq.api.app import create_app
from nodedrop_rq.api.protocol import JsonErrorH11Protocol, listening_socket
from nodedrop_rq.api.webhook_routes import QueryRedaction
from nodedrop_rq.settings import Settings

log = logging.getLogger("nodedrop_rq.serve")

RESTART_BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
# A pool that ran this long before dying is restarted after the shortest delay again.
STABLE_AFTER = 60.0
POLL_INTERVAL = 0.2
# After the pool's warm-shutdown allowance has run out: wait this long after the second SIGTERM, then kill.
COLD_SHUTDOWN_WAIT = 15.0
GRACEFUL_HTTP_SHUTDOWN = 10


class PoolSupervisor:
    """Keeps one ``nodedrop-rq worker --concurrency N`` child running until told to stop."""

    def __init__(self, concurrency: int, stop_timeout: float, command: list[str] | None = None) -> None:
        self.concurrency = concurrency
        self.stop_timeout = stop_timeout
        self.command = command or [sys.executable, "-m", "nodedrop_rq", "worker", "--concurrency",
                                   str(concurrency)]
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.restarts = 0
        self._signalled = False

    def spawn(self) -> None:
        # Own session: a terminal's SIGINT must not reach the pool next to the SIGTERM we send it.
        self.process = subprocess.Popen(self.command, start_new_session=True)
        self.started_at = time.monotonic()
        log.info("started worker pool (pid %d, %d worker process(es))", self.process.pid, self.concurrency)

    async def run(self, should_stop: asyncio.Event) -> None:
        """Spawn the pool and respawn it when it dies, until ``should_stop`` is set; then stop it."""
        failures = 0
        try:
            self.spawn()
            while not should_stop.is_set():
                await _wait_event(should_stop, POLL_INTERVAL)
                if should_stop.is_set() or self.process is None or self.process.poll() is None:
                    continue
                ran = time.monotonic() - self.started_at
                failures = 0 if ran >= STABLE_AFTER else failures + 1
                delay = RESTART_BACKOFF[min(max(failures - 1, 0), len(RESTART_BACKOFF) - 1)]
                log.error("worker pool (pid %d) exited with %s after %.0f s; restarting in %g s",
                          self.process.pid, self.process.returncode, ran, delay)
                await _wait_event(should_stop, delay)
                if not should_stop.is_set():
                    self.restarts += 1
                    self.spawn()
        finally:
            await self.stop()

    async def stop(self) -> int | None:
        """One SIGTERM (warm shutdown), then wait; a second SIGTERM and finally SIGKILL only after
        ``stop_timeout``. Returns the pool's exit code."""
        process = self.process
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        if not self._signalled:
            self._signalled = True
            log.info("stopping worker pool (pid %d): warm shutdown, running executions finish", process.pid)
            process.send_signal(signal.SIGTERM)
        if await _wait_exit(process, self.stop_timeout) is None:
            log.error("worker pool (pid %d) still running after %g s; cold shutdown", process.pid,
                      self.stop_timeout)
            process.send_signal(signal.SIGTERM)
            if await _wait_exit(process, COLD_SHUTDOWN_WAIT) is None:
                process.kill()
                await _wait_exit(process, COLD_SHUTDOWN_WAIT)
        log.info("worker pool (pid %d) exited with %s", process.pid, process.returncode)
        return process.returncode


async def _wait_event(event: asyncio.Event, timeout: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except asyncio.TimeoutError:
        pass


async def _wait_exit(process: subprocess.Popen[bytes], timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return process.returncode


def serve(settings: Settings, host: str, port: int, workers: int) -> int:
    """Serve the API on ``host:port`` (with ``workers`` > 0, also supervise a worker pool of that size)
    until SIGTERM or SIGINT; the exit code. :class:`~nodedrop_rq.errors.ListenFailed` before anything
    starts when the address cannot be bound."""
    # Bound here rather than by uvicorn, which would log a traceback-free but code-less exit 1.
    sock = listening_socket(host, port)
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        http=JsonErrorH11Protocol,
        log_level=settings.log_level.lower(),
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_HTTP_SHUTDOWN,
    )
    logging.getLogger("uvicorn.access").addFilter(QueryRedaction())
    server = uvicorn.Server(config)
    supervisor = PoolSupervisor(workers, stop_timeout=settings.job_timeout + 30) if workers > 0 else None
    stopping = {"signals": 0}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Active before and after uvicorn's own handlers (uvicorn re-raises the signal it caught once it
        # has shut down, which lands here too): never let the default handler kill us mid-shutdown.
        stopping["signals"] += 1
        server.should_exit = True
        if stopping["signals"] > 1 and supervisor is not None and supervisor.process is not None \
                and supervisor.process.poll() is None:
            log.info("%s: still waiting for the worker pool to finish its running executions",
                     signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        asyncio.run(_serve(server, supervisor, sock))
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


async def _serve(server: uvicorn.Server, supervisor: PoolSupervisor | None, sock: socket.socket) -> None:
    if supervisor is None:
        await server.serve(sockets=[sock])
        return
    should_stop = asyncio.Event()

    async def pool() -> None:
        # Only once the socket is bound: a server that cannot start must not leave workers behind.
        while not server.started:
            if server.should_exit or should_stop.is_set():
                return
            await asyncio.sleep(0.05)
        await supervisor.run(should_stop)

    async def watch_exit() -> None:
        # uvicorn sets should_exit on SIGTERM/SIGINT: stop the pool in parallel with its HTTP shutdown.
        while not server.should_exit:
            await asyncio.sleep(POLL_INTERVAL)
        should_stop.set()

    pool_task = asyncio.create_task(pool())
    watch_task = asyncio.create_task(watch_exit())
    try:
        await server.serve(sockets=[sock])
    finally:
        should_stop.set()
        watch_task.cancel()
        await pool_task
