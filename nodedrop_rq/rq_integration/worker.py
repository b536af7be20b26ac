"""``ExecutionWorker``: an ``rq.Worker`` that runs executions and keeps their state true on every path.

Works the same under our pool (``nodedrop-rq worker``) and under plain RQ::

    rq worker -w nodedrop_rq.worker.ExecutionWorker --with-scheduler \\
        -S rq.serializers.JSONSerializer --url "$REDIS_URL" executions

Which path records an attempt's outcome (always a fenced transition, see nodedrop_rq.execution):

* the attempt ran to an end (success, node failure, cancel, job timeout): the job function;
* the attempt's process was killed, it was stopped, or an error escaped the job function:
  :meth:`ExecutionWorker.handle_job_failure`, with this run's RQ execution id as the fence;
* the worker died with it: RQ's abandoned-job cleanup (``nodedrop_rq.jobs.on_execution_failure``) or, where
  that does not look, the maintenance sweep (``maintenance.py``).

Each path also sets the job's ``retries_left``, so RQ retries exactly when the transition said ``retrying``.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
from typing import Any

from redis.exceptions import RedisError
from rq import Worker
from rq.defaults import (
    DEFAULT_JOB_MONITORING_INTERVAL,
    DEFAULT_LOGGING_DATE_FORMAT,
    DEFAULT_LOGGING_FORMAT,
    DEFAULT_MAINTENANCE_TASK_INTERVAL,
    DEFAULT_WORKER_TTL,
)
from rq.exceptions import StopRequested
from rq.executions import Execution
from rq.job import Job
from rq.job_lifecycle import call_exception_handlers
from rq.queue import Queue

from nodedrop_rq import keys
from nodedrop_rq.connection import SERIALIZER
from nodedrop_rq.errors import ExecutionFailed
from nodedrop_rq.execution.transitions import Transitions
from nodedrop_rq.rq_integration import maintenance, names, outage_log, private, supervision
from nodedrop_rq.rq_integration.dequeue import ExecutionQueue
from nodedrop_rq.rq_integration.execution_job import ExecutionJob
from nodedrop_rq.rq_integration.heartbeats import RunningJobHeartbeat
from nodedrop_rq.rq_integration.jobs import RECORDED_ATTR, error_of, record_attempt_end
from nodedrop_rq.rq_integration.round_trips import FewerRoundTrips
from nodedrop_rq.rq_integration.scheduler import RetryScheduler
from nodedrop_rq.settings import Settings, configure, get_settings
from nodedrop_rq.workflow import load_function_modules

log = logging.getLogger(__name__)

# Fields we add to RQ's worker hash; they expire with it, so dead workers drop out by themselves.
POOL_FIELD = "nodedrop_pool"
CONCURRENCY_FIELD = "nodedrop_concurrency"
POOL_PID_FIELD = "nodedrop_pool_pid"


class ExecutionWorker(FewerRoundTrips, Worker):
    job_class = ExecutionJob

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
        # Outcomes go to the execution's state, not RQ's results stream (`rq worker` passes RQ's Job).
        if kwargs.get("job_class") in (None, Job, "rq.job.Job"):
            kwargs["job_class"] = ExecutionJob
        super().__init__(queues, *args, **kwargs)
        if self.queue_class is Queue:
            # Only for the dequeue (a classmethod): the worker's queues, checked against RQ's Queue above,
            # stay RQ's, as `rq worker` built them.
            self.queue_class = ExecutionQueue
        self.nd_pool_name = pool_name or self.name
        self.nd_pool_concurrency = pool_concurrency
        # Under a pool (ours, or the one plain `rq worker` starts for supervised isolation) the pool's pid.
        self.nd_supervised = pool_pid is not None
        self.nd_pool_pid = pool_pid or os.getpid()
        self._nd_transitions: Transitions | None = None
        self._nd_heartbeat: RunningJobHeartbeat | None = None
        self._nd_outage = outage_log.install(self.log)
        load_function_modules(self.nd_settings.function_modules)

    @property
    def transitions(self) -> Transitions:
        if self._nd_transitions is None:
            self._nd_transitions = Transitions(self.connection, self.nd_settings, failed_registry=names.failed_registry)
        return self._nd_transitions

    @property
    def inline(self) -> bool:
        """Executions run in this process (supervised or inline isolation), not in a forked horse."""
        return self.nd_settings.isolation != "fork"

    def work(self, burst: bool = False, logging_level: str | None = None, *args: Any,
             max_jobs: int | None = None, **kwargs: Any) -> bool:
        if self.nd_settings.isolation == "supervised" and not self.nd_supervised:
            # Plain `rq worker -w nodedrop_rq.worker.ExecutionWorker`: become the supervisor of one worker
            # process, so a crash costs only its attempt here too.
            from nodedrop_rq.rq_integration.pool import ExecutionWorkerPool  # the pool builds workers

            ExecutionWorkerPool(self.nd_settings, concurrency=1, queue=self.queue_names(), connection=self.connection,
                                worker_class=type(self)).start(burst=burst, logging_level=logging_level or "INFO")
            return True
        if self.inline:
            limit_memory(self.nd_settings.memory_limit_mb)
        if max_jobs is None and self.nd_settings.worker_max_jobs > 0:
            max_jobs = self.nd_settings.worker_max_jobs  # then the pool starts a fresh process
        return super().work(burst, logging_level, *args, max_jobs=max_jobs, **kwargs)

    # -- liveness and maintenance ------------------------------------------------------------------

    def register_birth(self) -> None:
        super().register_birth()
        self.connection.hset(self.key, mapping={POOL_FIELD: self.nd_pool_name,
                                                CONCURRENCY_FIELD: self.nd_pool_concurrency,
                                                POOL_PID_FIELD: self.nd_pool_pid})

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        # RQ adds a fixed 60 s to the monitoring interval; a shorter grace lets other workers notice
        # a dead one (and retry its execution) within 30 s.
        ttl = self.nd_settings.heartbeat_ttl
        if job.timeout and job.timeout > 0:
            remaining = job.timeout - working_time
            ttl = int(min(remaining, self.job_monitoring_interval)) + self.nd_settings.heartbeat_grace
        return max(ttl, self.nd_settings.heartbeat_grace)

    def clean_registries(self) -> None:
        maintenance.clean_registries(self, self.nd_settings)

    def _start_scheduler(self, burst: bool = False, logging_level: str | None = "INFO",
                         date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
                         log_format: str = DEFAULT_LOGGING_FORMAT) -> None:
        # As RQ's own, but with RetryScheduler's short lock lease (see scheduler.py).
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

    # -- running a job -----------------------------------------------------------------------------

    def execute_job(self, job: Job, queue: Queue) -> None:
        if not self.inline:
            super().execute_job(job, queue)
            return
        # As RQ's SimpleWorker, plus heartbeats while the execution runs (RQ sends none inline, so a long
        # execution would look abandoned); the preparation is one pipeline (see round_trips.py).
        execution = self.defer_preparation(job)
        if self._nd_heartbeat is None:
            self._nd_heartbeat = RunningJobHeartbeat(self.maintain_heartbeats, self.job_monitoring_interval)
        with self._nd_heartbeat.running(job, execution):
            self.perform_job(job, queue, execution)
        # No set_state(IDLE) here: the success MULTI or the dequeue loop writes it.
        ceiling = self.nd_settings.worker_max_memory_mb
        if ceiling and (resident := supervision.peak_resident_mb()) > ceiling:
            self.log.info("Worker %s: %.0f MB resident after execution %s, past EXECUTION_WORKER_MAX_MEMORY_MB=%d; "
                          "stopping so that a fresh process takes over", self.name, resident, job.id, ceiling)
            raise StopRequested  # the work loop ends cleanly; a pool starts a new worker

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.horse_pid or not self.inline:
            super().kill_horse(sig)
            return
        # Inline there is no horse to kill (RQ would signal our own process group): RQ's stop command
        # becomes a cancel at the next node boundary instead.
        job_id = self.get_current_job_id()
        if job_id:
            self.connection.hset(keys.execution(job_id), "cancelRequested", "1")
        # Not a stopped job in RQ's sense: the attempt ends as its transition says (cancelled at the node
        # boundary, or failed and retried if a node fails first), and RQ must then retry as told.
        self._stopped_job_id = None

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        if self.is_horse:
            limit_memory(self.nd_settings.memory_limit_mb)
        return super().perform_job(job, queue, execution)

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        # RQ logs every failed job at ERROR with its traceback; a node failing is an expected outcome of a
        # workflow, recorded in the execution: one INFO line, the traceback only at DEBUG.
        if isinstance(exc_info[1], ExecutionFailed):
            self.log.info("Worker %s: execution %s attempt %s: %s", self.name, job.id, exc_info[1].attempt,
                          exc_info[1])
            self.log.debug("Worker %s: execution %s failed", self.name, job.id, exc_info=exc_info)
            call_exception_handlers(private.exception_handlers(self), job, *exc_info)
            return
        super().handle_exception(job, *exc_info)

    def handle_job_failure(self, job: Job, queue: Queue, started_job_registry: Any = None, exc_string: str = "",
                           execution: Execution | None = None) -> None:
        if job.__dict__.pop(RECORDED_ATTR, False):
            if self.inline:
                self._stopped_job_id = None  # a stop that raced the failure: the failure was recorded
        else:
            stopped = self._stopped_job_id == job.id
            try:
                record_attempt_end(self.connection, job, token=execution.id if execution else None,
                                   error=error_of(exc_string, job, stopped), cancelled=stopped)
            except RedisError as exc:  # RQ's own pipeline below will meet the same outage and log it
                self.log.warning("Worker %s: could not record the end of %s: %s", self.name, job.id, exc)
        super().handle_job_failure(job, queue, started_job_registry=started_job_registry, exc_string=exc_string,
                                   execution=execution)


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
