"""``nodedrop-rq worker``: N ExecutionWorker processes under RQ's WorkerPool supervisor.

RQ's WorkerPool already respawns dead workers every second and turns SIGTERM into a warm shutdown
of each worker. This subclass builds ExecutionWorkers with our settings (RQ's pool would not pass
worker_ttl and the monitoring intervals through), labels them with the pool's name and size, and
supervises them (``supervision.py``): a dead worker's attempt ends at once and is retried on schedule,
and a worker whose execution overruns the job timeout is killed. The children are forked from a
supervisor that has imported everything they run, with its objects frozen out of the garbage collector's
reach, so the pages stay shared copy-on-write.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import time
from collections.abc import Iterator
from multiprocessing import get_context
from multiprocessing.process import BaseProcess
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis import Redis
from rq.logutils import setup_loghandlers
from rq.worker_pool import WorkerData, WorkerPool

from nodedrop_rq import probe_server
from nodedrop_rq.connection import SERIALIZER, redis_from_settings, wait_for_redis
from nodedrop_rq.errors import RedisRefused
from nodedrop_rq.rq_integration import private, supervision
from nodedrop_rq.rq_integration.scheduler import RetryScheduler
from nodedrop_rq.rq_integration.worker import ExecutionWorker
from nodedrop_rq.settings import Settings, configure
from nodedrop_rq.workflow import load_function_modules

log = logging.getLogger(__name__)


class ExecutionWorkerPool(WorkerPool):
    def __init__(self, settings: Settings, concurrency: int | None = None, queue: str | list[str] | None = None,
                 connection: Redis | None = None, worker_class: type[ExecutionWorker] = ExecutionWorker) -> None:
        self.settings = settings
        configure(settings)  # the supervisor records dead workers' attempts with these settings
        # Worker name -> why the supervisor killed it (the dead worker's attempt is recorded with it).
        self._nd_killed: dict[str, str] = {}
        self._nd_scheduler: RetryScheduler | None = None
        super().__init__(
            [queue] if isinstance(queue, str) else (queue or [settings.queue]),
            connection=connection or redis_from_settings(settings),
            num_workers=concurrency or settings.worker_concurrency,
            worker_class=worker_class,
            serializer=SERIALIZER,
        )

    def start(self, burst: bool = False, logging_level: str = "INFO") -> None:
        setup_loghandlers(logging_level, name=__name__)
        self.serve_probes()
        stopping: list[int] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda sig, _frame: stopping.append(sig))
        # One clear line while Redis is unreachable, instead of N workers failing and respawning each second.
        try:
            answered = wait_for_redis(self.connection, self.settings.redis_url, log, stop=lambda: bool(stopping),
                                      refused_is_final=True)
        except RedisRefused as exc:
            log.error("%s", exc)
            raise SystemExit(4) from None  # the CLI's code for a refused REDIS_URL
        if not answered:
            log.info("stopped before Redis answered")
            return
        load_function_modules(self.settings.function_modules)
        gc.collect()
        gc.freeze()  # what the children inherit stays shared: their collections no longer write to it
        if not burst:
            # The supervisor, not a worker, runs RQ's scheduler (it moves due retries back to the queue):
            # a worker that dies must not take the retries of every execution with it.
            self._nd_scheduler = RetryScheduler(self._queue_names, connection=self.connection,
                                                logging_level=logging_level, serializer=SERIALIZER)
        try:
            super().start(burst=burst, logging_level=logging_level)
        finally:
            self._stop_scheduler()

    def check_workers(self, respawn: bool = True) -> None:
        supervision.safely("look for executions past their timeout", self._kill_overrunning)
        if self.status != self.Status.STOPPED:
            supervision.safely("start the scheduler", self._keep_scheduler)
        super().check_workers(respawn=respawn)

    def _keep_scheduler(self) -> None:
        """As RQ's worker does at each maintenance: take the scheduler lock when no scheduler holds it (a
        dead pool's lease runs out within seconds, see scheduler.py) and run the scheduler process."""
        scheduler = self._nd_scheduler
        if scheduler is None:
            return
        process = private.scheduler_process(scheduler)
        if process is None or not process.is_alive():
            scheduler.acquire_locks(auto_start=True)

    def _stop_scheduler(self) -> None:
        process = private.scheduler_process(self._nd_scheduler) if self._nd_scheduler else None
        if process is not None and process.is_alive():
            process.terminate()  # SIGTERM: it releases its locks and leaves
            process.join(10)

    def _kill_overrunning(self) -> None:
        by_name = {data.name: data for data in self.worker_dict.values()}
        if not by_name:
            return
        current = supervision.running(self.connection, list(by_name))
        for item, timeout in supervision.overrunning(self.connection, current, self.settings.timeout_kill_grace):
            data = by_name[item.worker_name]
            self._nd_killed[item.worker_name] = supervision.timeout_reason(timeout)
            log.warning("worker %s (pid %d): execution %s still runs past its timeout; killing the worker",
                        item.worker_name, data.pid, item.job_id)
            supervision.kill_group(data.pid)

    def handle_dead_worker(self, worker_data: WorkerData) -> None:
        super().handle_dead_worker(worker_data)
        supervision.kill_group(worker_data.pid)  # its horse or scheduler process must not run on alone
        exitcode = worker_data.process.exitcode
        reason = self._nd_killed.pop(worker_data.name, None) or supervision.death_reason(exitcode)
        ended = supervision.safely("end the attempt of a dead worker", supervision.fail_attempts_of,
                                   self.connection, worker_data.name, reason)
        if ended:
            log.warning("worker %s (pid %d) died (exit code %s) while running %s: attempt ended, retried as "
                        "scheduled", worker_data.name, worker_data.pid, exitcode, ", ".join(ended))

    def serve_probes(self) -> None:
        """``NODEDROP_WORKER_HEALTH_PORT``: /healthz, /healthz/readiness and /metrics, from this supervisor,
        before Redis is asked anything (liveness must answer while Redis is down). ListenFailed (exit 5)
        when the port is taken."""
        port = self.settings.worker_health_port
        if not port:
            return
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_PoolCollector(self))
        # Its own client, with a read timeout: the pool's has none (RQ's blocking dequeue), and a probe must
        # not hang on a black-holed Redis.
        connection = redis_from_settings(self.settings, socket_timeout=0.9, socket_connect_timeout=0.9)
        server = probe_server.bind(self.settings.worker_health_host, port, probe_server.probe_app(connection, registry))
        # Worker processes are forked from here: they must not keep the listening socket (a dead supervisor's
        # port would otherwise stay bound, and a new pool in the same pod could not take it).
        os.register_at_fork(after_in_child=server.socket.close)
        probe_server.serve_in_background(server, "health-port")
        log.info("worker pool health and metrics on http://%s:%d/healthz", self.settings.worker_health_host,
                 server.server_port)

    def get_worker_process(self, name: str, burst: bool, _sleep: float = 0,
                           logging_level: str = "INFO") -> BaseProcess:
        return get_context("fork").Process(
            target=run_pool_worker,
            args=(name, self._queue_names, self._connection_class, self._pool_class, self._pool_kwargs),
            kwargs={"settings": self.settings, "pool_name": self.name, "pool_concurrency": self.num_workers,
                    "pool_pid": os.getpid(), "worker_class": self.worker_class,
                    "burst": burst, "logging_level": logging_level},
            name=f"ExecutionWorker {name} (pool {self.name})",
        )


def run_pool_worker(name: str, queue_names: list[str], connection_class: Any, pool_class: Any,
                    pool_kwargs: dict[str, Any], *, settings: Settings, pool_name: str, pool_concurrency: int,
                    pool_pid: int, burst: bool, logging_level: str,
                    worker_class: type[ExecutionWorker] = ExecutionWorker) -> None:
    # Our own process group: a terminal's Ctrl-C reaches only the supervisor, which forwards exactly
    # one SIGINT (warm shutdown); a second signal would make RQ kill the running execution.
    os.setpgrp()
    # From the settings, not from RQ's (connection class, pool kwargs) pair: that pair cannot rebuild a
    # Sentinel-backed client (the pool that asks the sentinels for the master is not a kwarg), and a child
    # pinned to one master's address would not follow a failover.
    del connection_class, pool_class, pool_kwargs
    connection = redis_from_settings(settings)
    # After an outage the supervisor respawns workers every second; they wait here quietly instead.
    try:
        wait_for_redis(connection, settings.redis_url, log=None, refused_is_final=True)
    except RedisRefused as exc:  # e.g. the password changed while the pool ran: say so once per respawn
        log.error("worker %s cannot start: %s", name, exc)
        time.sleep(5)
        raise SystemExit(4) from None
    worker = worker_class(queue_names, name=name, connection=connection, settings=settings,
                             pool_name=pool_name, pool_concurrency=pool_concurrency, pool_pid=pool_pid)
    setup_loghandlers(logging_level, name="rq.worker")
    try:
        # The supervisor runs the scheduler; in burst mode each worker moves the retries due now, once.
        worker.work(burst=burst, with_scheduler=burst, logging_level=logging_level)
    except Exception as exc:  # noqa: BLE001 - the supervisor restarts us; say why once
        log.error("worker %s stopped: %s: %s", name, type(exc).__name__, exc)
        time.sleep(1)
        raise SystemExit(1) from None


class _PoolCollector(Collector):
    """What only the supervisor knows: its live worker processes against the size it keeps. Everything about
    executions is in Redis and published by the exporter."""

    def __init__(self, pool: ExecutionWorkerPool) -> None:
        self.pool = pool

    def collect(self) -> Iterator[Metric]:
        processes = GaugeMetricFamily("nodedrop_worker_pool_processes",
                                      "Worker processes this pool supervises now (it respawns dead ones).")
        processes.add_metric([], self.pool.number_of_active_workers)
        size = GaugeMetricFamily("nodedrop_worker_pool_size",
                                 "Worker processes this pool keeps (--concurrency, EXECUTION_WORKER_CONCURRENCY).")
        size.add_metric([], self.pool.num_workers)
        yield processes
        yield size
