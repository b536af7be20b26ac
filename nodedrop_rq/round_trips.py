"""``FewerRoundTrips``: RQ's per-job protocol with the redundant Redis round trips left out.

RQ 2.12's worker spends about 15 round trips on a job. Measured per job with an inline worker
(``bench/round_trips.py``), and what this mixin does about each:

* three worker heartbeats (after the job, before and after the dequeue) and a fourth inside the
  suspension check, all within a millisecond: a heartbeat that would not extend the worker key's expiry
  beyond what the last full one granted a moment ago is skipped (:meth:`heartbeat`);
* the suspension check (``rq suspend``) at the top of the work loop reads one key right after the job's
  success MULTI; that MULTI reads it instead (the same moment, the same job boundary);
* ``prepare_execution`` and ``prepare_job_execution`` are two pipelines back to back, and the job function
  starts the attempt (``Transitions.start_attempt``) with a third; inline they are one;
* ``handle_execution_ended`` heartbeats the job before the success or failure pipeline; inline, the
  worker's heartbeat thread keeps beating until that pipeline has run, so it is left out;
* ``handle_job_success`` WATCHes the job's dependents key and reads it before its MULTI, for jobs that
  have dependents. Here the read goes inside the MULTI (atomic with the job becoming ``finished``), and
  the rare job that has dependents gets them enqueued right after by RQ's own ``enqueue_dependents``.
  A dependent enqueued concurrently either made it into the set before the MULTI (so the read sees it)
  or finds its dependency ``finished`` and is enqueued by RQ at once (RQ WATCHes the dependency's key);
* the worker goes ``idle`` inside that MULTI when inline, so the dequeue loop need not write it again.

What remains per job: the dequeue (LMOVE, then the job hash), one preparation pipeline, the job's
PERSIST (in ``Job.perform``) and the success MULTI.
"""

from __future__ import annotations

import time
from typing import Any

from redis.client import Pipeline
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue
from rq.suspension import WORKERS_SUSPENDED
from rq.utils import now
from rq.worker import WorkerStatus

from nodedrop_rq.jobs import ATTEMPT_STARTED_ATTR, FUNC_NAME
from nodedrop_rq.transitions import Transitions, attempt_started

# Heartbeats closer together than this, with no shorter lease granted in between, are redundant.
HEARTBEAT_MIN_INTERVAL = 1.0


class FewerRoundTrips:
    """Mixed into :class:`~nodedrop_rq.worker.ExecutionWorker` before ``rq.Worker``. ``self.inline``
    says whether jobs run in the worker process (the prepare/ended/idle savings need that)."""

    inline: bool
    transitions: Transitions
    _nd_full_beat_at = float("-inf")
    _nd_known_not_suspended = False
    _nd_prepare_pending = False

    # -- worker heartbeats and suspension ----------------------------------------------------------

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        full = self.worker_ttl + 60  # RQ's lease when no timeout is given
        lease = timeout or full
        clock = time.monotonic()
        if pipeline is None and lease >= full and clock - self._nd_full_beat_at < HEARTBEAT_MIN_INTERVAL:
            return
        # A full lease lets the next full heartbeat within the interval be skipped; a shorter one (while a
        # job runs) must not, or the key could expire while the worker waits on an empty queue.
        self._nd_full_beat_at = clock if lease >= full else float("-inf")
        if pipeline is not None:
            super().heartbeat(timeout, pipeline=pipeline)  # type: ignore[misc]
            return
        # RQ sends HSET and EXPIRE as two round trips when no pipeline is given.
        with self.connection.pipeline(transaction=False) as pipe:
            super().heartbeat(timeout, pipeline=pipe)  # type: ignore[misc]
            pipe.execute()

    def check_for_suspension(self, burst: bool) -> None:
        if self._nd_known_not_suspended:
            self._nd_known_not_suspended = False  # read by the success MULTI of the job just finished
            return
        super().check_for_suspension(burst)  # type: ignore[misc]

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        if pipeline is None and state == WorkerStatus.IDLE and self._state == WorkerStatus.IDLE:
            return  # only this worker writes its state, and it already wrote idle
        super().set_state(state, pipeline=pipeline)  # type: ignore[misc]

    # -- one preparation pipeline (inline) ---------------------------------------------------------

    def defer_preparation(self) -> None:
        """Inline ``execute_job`` calls this instead of ``prepare_execution``: the execution record is
        then written by ``prepare_job_execution``'s pipeline."""
        self._nd_prepare_pending = True

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        if not self._nd_prepare_pending:
            super().prepare_job_execution(job, remove_from_intermediate_queue)  # type: ignore[misc]
            return
        self._nd_prepare_pending = False
        with self.connection.pipeline() as pipeline:
            heartbeat_ttl = self.get_heartbeat_ttl(job)
            # What rq.executions.prepare_execution writes, then what Worker.prepare_job_execution writes.
            self.execution = Execution.create(job, heartbeat_ttl, pipeline=pipeline, worker_name=self.name)
            self.set_state(WorkerStatus.BUSY, pipeline=pipeline)
            self.set_current_job_id(job.id, pipeline=pipeline)
            self.set_current_job_working_time(0, pipeline=pipeline)
            self.heartbeat(heartbeat_ttl, pipeline=pipeline)
            job.heartbeat(now(), heartbeat_ttl, pipeline=pipeline)
            job.prepare_for_execution(self.name, pipeline=pipeline)
            if remove_from_intermediate_queue:
                pipeline.lrem(Queue(job.origin, connection=self.connection).intermediate_queue_key, 1, job.id)
            execution_id = job.args[0] if job.func_name == FUNC_NAME and job.args else None
            if execution_id is not None:
                started_at = self.transitions.queue_start_attempt(pipeline, execution_id, self.name)
            replies = pipeline.execute(raise_on_error=False)
        if execution_id is not None and not isinstance(replies[-1], Exception):
            # run_execution takes it from here; on an error it runs start_attempt itself and reports it.
            setattr(job, ATTEMPT_STARTED_ATTR, attempt_started(replies[-1], started_at))
        self.procline(f"Processing {job.func_name} from {job.origin} since {time.time()}")

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        if not self.inline:
            super().handle_execution_ended(job, queue, heartbeat_ttl)  # type: ignore[misc]
            return
        job.ended_at = now()

    # -- success without WATCH --------------------------------------------------------------------

    def handle_job_success(self, job: Job, queue: Queue, started_job_registry: Any) -> None:
        result_ttl = job.get_result_ttl(self.default_result_ttl)
        if result_ttl == 0 or (job.repeats_left is not None and job.repeats_left > 0):
            # Jobs deleted on success or repeated: RQ's own path (these are never executions).
            super().handle_job_success(job, queue, started_job_registry)  # type: ignore[misc]
            return
        assert job.started_at and job.ended_at
        with self.connection.pipeline() as pipeline:
            self.increment_successful_job_count(pipeline=pipeline)
            self.increment_total_working_time(job.ended_at - job.started_at, pipeline)
            job._handle_success(
                result_ttl,
                pipeline=pipeline,
                worker_name=self.name,
                execution_id=self.execution.id if self.execution else None,
                execution_started_at=self.execution.created_at if self.execution else None,
                execution_ended_at=job.ended_at,
            )
            job.cleanup(result_ttl, pipeline=pipeline, remove_from_queue=False)
            self.cleanup_execution(job, pipeline=pipeline)
            if self.inline:
                self.set_state(WorkerStatus.IDLE, pipeline=pipeline)
                self.heartbeat(pipeline=pipeline)
            pipeline.exists(WORKERS_SUSPENDED)
            pipeline.smembers(job.dependents_key)
            *_, suspended, dependents = pipeline.execute()
        # In a fork the horse runs this, and the worker checks for itself.
        self._nd_known_not_suspended = not suspended and not self._is_horse
        if dependents:
            queue.enqueue_dependents(job)
        self.log.info("Successfully completed job %s in %ss on worker %s", job.id,
                      job.ended_at - job.started_at, self.name)
