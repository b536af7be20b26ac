"""``nodedrop-rq worker``: N ExecutionWorker processes under RQ's WorkerPool supervisor.

RQ's WorkerPool already respawns dead workers every second and turns SIGTERM into a warm shutdown
of each worker; this subclass only builds ExecutionWorkers with our settings (RQ's pool would not
pass worker_ttl and the monitoring intervals through) and labels them with the pool's name and size.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from multiprocessing import get_context
from multiprocessing.process import BaseProcess
from typing import Any

from redis import Redis
from rq.logutils import setup_loghandlers
from rq.worker_pool import WorkerPool

from nodedrop_rq.connection import SERIALIZER, redis_from_settings, wait_for_redis
from nodedrop_rq.errors import RedisRefused
from nodedrop_rq.rq_integration.worker import ExecutionWorker
from nodedrop_rq.settings import Settings

log = logging.getLogger(__name__)


class ExecutionWorkerPool(WorkerPool):
    def __init__(self, settings: Settings, concurrency: int | None = None, queue: str | list[str] | None = None,
                 connection: Redis | None = None) -> None:
        self.settings = settings
        super().__init__(
            [queue] if isinstance(queue, str) else (queue or [settings.queue]),
            connection=connection or redis_from_settings(settings),
            num_workers=concurrency or settings.worker_concurrency,
            worker_class=ExecutionWorker,
            serializer=SERIALIZER,
        )

    def start(self, burst: bool = False, logging_level: str = "INFO") -> None:
        setup_loghandlers(logging_level, name=__name__)
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
        super().start(burst=burst, logging_level=logging_level)

    def get_worker_process(self, name: str, burst: bool, _sleep: float = 0,
                           logging_level: str = "INFO") -> BaseProcess:
        return get_context("fork").Process(
            target=run_pool_worker,
            args=(name, self._queue_names, self._connection_class, self._pool_class, self._pool_kwargs),
            kwargs={"settings": self.settings, "pool_name": self.name, "pool_concurrency": self.num_workers,
                    "pool_pid": os.getpid(),
                    "burst": burst, "logging_level": logging_level},
            name=f"ExecutionWorker {name} (pool {self.name})",
        )


def run_pool_worker(name: str, queue_names: list[str], connection_class: Any, pool_class: Any,
                    pool_kwargs: dict[str, Any], *, settings: Settings, pool_name: str, pool_concurrency: int,
                    pool_pid: int, burst: bool, logging_level: str) -> None:
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
    worker = ExecutionWorker(queue_names, name=name, connection=connection, settings=settings,
                             pool_name=pool_name, pool_concurrency=pool_concurrency, pool_pid=pool_pid)
    setup_loghandlers(logging_level, name="rq.worker")
    try:
        worker.work(burst=burst, with_scheduler=True, logging_level=logging_level)
    except Exception as exc:  # noqa: BLE001 - the supervisor restarts us; say why once
        log.error("worker %s stopped: %s: %s", name, type(exc).__name__, exc)
        time.sleep(1)
        raise SystemExit(1) from None
