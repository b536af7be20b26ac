"""``ExecutionWorker``: an ``rq.Worker`` that keeps each execution's state true on every path RQ has.

Works the same under our pool (``nodedrop-rq worker``) and under plain RQ::

    rq worker -w nodedrop_rq.worker.ExecutionWorker --with-scheduler \\
        -S rq.serializers.JSONSerializer --url "$REDIS_URL" executions

Which path writes what:

* success: RQ's success MULTI (``increment_successful_job_count``) also sets ``succeeded``
  (or ``cancelled`` when the run stopped at a node boundary), the output and the counters;
* failure inside the horse (node error, job timeout), horse killed, stop command: RQ's failure
  pipeline (``increment_failed_job_count``) also sets ``retrying`` with the next attempt's time,
  ``failed``, or ``cancelled``;
* worker died with its horse: ``nodedrop_rq.jobs.on_execution_failure`` (abandoned-job cleanup).
"""

from __future__ import annotations

import logging
import os
import resource
import signal
from typing import Any

from redis.client import Pipeline
from rq import Worker
from rq.defaults import (
    DEFAULT_JOB_MONITORING_INTERVAL,
    DEFAULT_LOGGING_DATE_FORMAT,
    DEFAULT_LOGGING_FORMAT,
    DEFAULT_MAINTENANCE_TASK_INTERVAL,
    DEFAULT_WORKER_TTL,
)
from rq.job import Job
from rq.queue import Queue
from rq.timeouts import JobTimeoutException

from nodedrop_rq import keys
from nodedrop_rq.connection import SERIALIZER
from nodedrop_rq.errors import ExecutionFailed
from nodedrop_rq.heartbeats import RunningJobHeartbeat
from nodedrop_rq.retry_scheduler import RetryScheduler
from nodedrop_rq.round_trips import FewerRoundTrips
from nodedrop_rq.settings import Settings, configure, get_settings
from nodedrop_rq.transitions import AttemptFailure, Transitions, job_duration
from nodedrop_rq.workflow import load_function_modules

log = logging.getLogger(__name__)

# Fields we add to RQ's worker hash; they expire with it, so dead workers drop out by themselves.
POOL_FIELD = "nodedrop_pool"
CONCURRENCY_FIELD = "nodedrop_concurrency"
POOL_PID_FIELD = "nodedrop_pool_pid"


class ExecutionWorker(FewerRoundTrips, Worker):
    def __init__(self, queues: Any, *args: Any, settings: Settings | None = None,
                 pool_name: str | None = None, pool_concurrency: int = 1, pool_pid: int | None = None,
                 **kwargs: Any) -> None:
        if settings is not None:
            configure(settings)
        self.nd_settings = get_settings()
        # `rq worker` passes RQ's defaults explicitly; replace those (and only those) with ours, which
        # detect a dead worker within seconds instead of minutes.
        for name, rq_default, ours in (
            ("worker_ttl", DEFAULT_WORKER_TTL, self.nd_settings.worker_ttl),
            ("maintenance_interval", DEFAULT_MAINTENANCE_TASK_INTERVAL, self.nd_settings.maintenance_interval),
            ("job_monitoring_interval", DEFAULT_JOB_MONITORING_INTERVAL,
             self.nd_settings.job_monitoring_interval),
        ):
            if kwargs.get(name) in (None, rq_default):
                kwargs[name] = ours
        kwargs.pop("default_worker_ttl", None)
        # Our jobs are JSON; a pickle-reading worker could not even load them.
        kwargs["serializer"] = SERIALIZER
        super().__init__(queues, *args, **kwargs)
        self.nd_pool_name = pool_name or self.name
        self.nd_pool_concurrency = pool_concurrency
        self.nd_pool_pid = pool_pid or os.getpid()
        self._nd_transitions: Transitions | None = None
        self._nd_exc: tuple[str, BaseException] | None = None
        self._nd_success_job: Job | None = None
        self._nd_failure: tuple[Job, AttemptFailure] | None = None
        self._nd_heartbeat: RunningJobHeartbeat | None = None
        load_function_modules(self.nd_settings.function_modules)
        if self.inline:
            limit_memory(self.nd_settings.memory_limit_mb)

    @property
    def transitions(self) -> Transitions:
        if self._nd_transitions is None:
            self._nd_transitions = Transitions(self.connection, self.nd_settings)
        return self._nd_transitions

    # -- liveness ---------------------------------------------------------------------------------

    def register_birth(self) -> None:
        super().register_birth()
        self.connection.hset(self.key, mapping={POOL_FIELD: self.nd_pool_name,
                                                CONCURRENCY_FIELD: self.nd_pool_concurrency,
                                                POOL_PID_FIELD: self.nd_pool_pid})

    def get_heartbeat_ttl(self, job: Job) -> int:
        # RQ adds a fixed 60 s to the monitoring interval; a shorter grace lets other workers notice
        # a dead one (and retry its execution) within 30 s.
        ttl = self.nd_settings.heartbeat_ttl
        if job.timeout and job.timeout > 0:
            remaining = job.timeout - self.current_job_working_time
            ttl = int(min(remaining, self.job_monitoring_interval)) + self.nd_settings.heartbeat_grace
        return max(ttl, self.nd_settings.heartbeat_grace)

    def _start_scheduler(self, burst: bool = False, logging_level: str | None = "INFO",
                         date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
                         log_format: str = DEFAULT_LOGGING_FORMAT) -> None:
        # As RQ's own, but with RetryScheduler's short lock lease (see retry_scheduler.py).
        self.scheduler = RetryScheduler(self.queues, connection=self.connection,
                                        logging_level=logging_level or self.log.level,
                                        date_format=date_format, log_format=log_format, serializer=self.serializer)
        self.scheduler.acquire_locks()
        if not self.scheduler.acquired_locks:
            return
        if not burst:
            self.scheduler.start()
            return
        try:
            self.scheduler.register_birth()
            self.scheduler.enqueue_scheduled_jobs()
        finally:
            self.scheduler.release_locks()
            self.scheduler.register_death()

    # -- isolation ----------------------------------------------------------------------------

    @property
    def inline(self) -> bool:
        return self.nd_settings.isolation == "inline"

    def execute_job(self, job: Job, queue: Queue) -> None:
        if not self.inline:
            super().execute_job(job, queue)
            return
        # As RQ's SimpleWorker, plus heartbeats while the execution runs (see heartbeats.py); the
        # execution record is written with prepare_job_execution's pipeline (see round_trips.py).
        self.defer_preparation()
        if self._nd_heartbeat is None:
            self._nd_heartbeat = RunningJobHeartbeat(self._beat, self.job_monitoring_interval)
        with self._nd_heartbeat.running(job):
            self.perform_job(job, queue)
        # No set_state(IDLE) here (SimpleWorker's extra round trip): the success MULTI or the dequeue
        # loop writes it.

    def _beat(self, job: Job, working_for: float) -> None:
        self.set_current_job_working_time(working_for)
        if self.execution is not None:
            self.maintain_heartbeats(job)

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.horse_pid or not self.inline:
            super().kill_horse(sig)
            return
        # Inline there is no horse to kill (RQ would signal our own process group): RQ's stop command
        # becomes a cancel at the next node boundary instead.
        job_id = self.get_current_job_id()
        if job_id:
            self.connection.hset(keys.execution(job_id), "cancelRequested", "1")

    # -- success ----------------------------------------------------------------------------------

    def perform_job(self, job: Job, queue: Queue) -> bool:
        if self._is_horse:
            limit_memory(self.nd_settings.memory_limit_mb)
        self._nd_exc = None
        self._nd_success_job = job
        try:
            return super().perform_job(job, queue)
        finally:
            self._nd_success_job = None

    def increment_successful_job_count(self, pipeline: Pipeline | None = None) -> None:
        super().increment_successful_job_count(pipeline)
        job = self._nd_success_job
        if job is not None and pipeline is not None and isinstance(job._result, dict):
            self.transitions.succeeded(pipeline, job, job._result, job_duration(job))

    # -- failure ----------------------------------------------------------------------------------

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        self._nd_exc = (job.id, exc_info[1])
        super().handle_exception(job, *exc_info)

    def handle_job_failure(self, job: Job, queue: Queue, started_job_registry: Any = None,
                           exc_string: str = "") -> None:
        stopped = self._stopped_job_id == job.id
        retry = job.should_retry and not stopped
        exc = self._nd_exc[1] if self._nd_exc and self._nd_exc[0] == job.id else None
        failure = AttemptFailure(
            error=_error_of(exc, exc_string, job),
            retry=retry,
            retry_in=job.get_retry_interval() if retry else None,
            cancelled=stopped,
        )
        if isinstance(exc, ExecutionFailed):
            failure.nodes, failure.attempt, failure.started_at = exc.nodes, exc.attempt, exc.started_at
            failure.worker, failure.events = exc.worker, exc.events
        self._nd_failure = (job, failure)
        try:
            super().handle_job_failure(job, queue, started_job_registry=started_job_registry,
                                       exc_string=exc_string)
        finally:
            self._nd_failure = None
            self._nd_exc = None

    def increment_failed_job_count(self, pipeline: Pipeline | None = None) -> None:
        super().increment_failed_job_count(pipeline)
        if self._nd_failure is not None and pipeline is not None:
            job, failure = self._nd_failure
            self._nd_failure = None  # exactly once per failed attempt
            self.transitions.attempt_failed(pipeline, job, failure, job_duration(job))


def limit_memory(megabytes: int) -> None:
    """Cap this process's data memory, so a node that allocates too much fails with MemoryError
    instead of the kernel's OOM killer taking down the worker (or the container)."""
    if megabytes <= 0:
        return
    limit = megabytes * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


def _error_of(exc: BaseException | None, exc_string: str, job: Job) -> dict[str, Any]:
    if isinstance(exc, ExecutionFailed):
        return dict(exc.error, kind="node")
    if isinstance(exc, JobTimeoutException):
        return {"message": f"execution timed out after {job.timeout} s (EXECUTION_JOB_TIMEOUT)",
                "kind": "timeout"}
    if exc is not None:
        return {"message": f"{type(exc).__name__}: {exc}", "kind": "internal"}
    if "stopped" in exc_string:
        return {"message": "execution stopped on request", "kind": "cancelled"}
    if "terminated unexpectedly" in exc_string:
        detail = exc_string.strip().rstrip(";")
        return {"message": f"the process running this execution died ({detail}); "
                           "it may have run out of memory", "kind": "killed"}
    return {"message": exc_string.strip().splitlines()[-1] if exc_string.strip() else "execution failed",
            "kind": "internal"}
