"""``FewerRoundTrips``: RQ's per-job protocol with the redundant Redis round trips left out.

RQ 2.12's worker spends about 15 round trips on a job. Measured per job with an inline worker
(``bench/round_trips.py``), and what this mixin does about each:

* three worker heartbeats (after the job, before and after the dequeue) and a fourth inside the
  suspension check, all within a millisecond: a heartbeat that would not extend the worker key's expiry
  beyond what the last full one granted a moment ago is skipped (:meth:`heartbeat`);
* the suspension check (``rq suspend``) at the top of the work loop reads one key right after the job's
  success MULTI; that MULTI reads it instead (the same job boundary, though before the job's webhooks,
  if it has any, are sent: a suspension issued while they are sent takes effect one job later);
* ``prepare_execution`` and ``prepare_job_execution`` are two pipelines back to back, and the job function
  starts the attempt (``Transitions.start_attempt``) with a third; inline they are one, and in a fork the
  horse's two (preparation and attempt start) are one;
* ``handle_execution_ended`` heartbeats the job before the success or failure pipeline; inline, the
  worker's heartbeat thread keeps beating until that pipeline has run, so it is left out;
* ``handle_job_success`` WATCHes the job's dependents key and reads it before its MULTI, for jobs that
  have dependents (executions never do unless a producer uses RQ's ``depends_on``). The preparation
  pipeline now also reads whether the job has dependents: a job that has them takes RQ's own WATCHed
  path unchanged. For the others the read goes inside the MULTI (atomic with the job becoming
  ``finished``). A dependent added while the job ran either made it into the set before the MULTI, and
  :func:`enqueue_late_dependents` enqueues it right after (only while it is still ``deferred``, under
  WATCH, so two parents finishing together enqueue it once), or it finds its dependency ``finished`` and
  RQ enqueues it at once (RQ WATCHes the dependency's key). The one window RQ does not have: a worker
  killed between that MULTI and the enqueue leaves such a late dependent deferred;
* the worker goes ``idle`` inside that MULTI when inline, so the dequeue loop need not write it again.

What remains per job: the dequeue (LMOVE, then the job hash), one preparation pipeline, the job's
PERSIST (in ``Job.perform``) and the success MULTI.
"""

from __future__ import annotations

import time
from typing import Any

from redis.client import Pipeline
from redis.exceptions import WatchError
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.registry import DeferredJobRegistry
from rq.suspension import WORKERS_SUSPENDED
from rq.utils import as_text, now
from rq.worker import WorkerStatus

from nodedrop_rq.jobs import ATTEMPT_STARTED_ATTR, FUNC_NAME
from nodedrop_rq.transitions import Transitions, attempt_started

# Bounds the retries of a WATCHed transaction that other clients keep changing under us.
MAX_WATCH_RETRIES = 100
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
    # Whether the running job had dependents when it started (None: not known, e.g. an error reading it).
    _nd_had_dependents: bool | None = None

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
        # Worker.prepare_job_execution's writes (preceded, inline, by rq.executions.prepare_execution's),
        # plus whether the job has dependents yet (see handle_job_success) and the attempt start (in a
        # fork this runs in the horse, which then performs the job).
        merged = self._nd_prepare_pending
        self._nd_prepare_pending = False
        self._nd_had_dependents = None
        with self.connection.pipeline() as pipeline:
            self.set_current_job_id(job.id, pipeline=pipeline)
            self.set_current_job_working_time(0, pipeline=pipeline)
            heartbeat_ttl = self.get_heartbeat_ttl(job)
            if merged:
                self.execution = Execution.create(job, heartbeat_ttl, pipeline=pipeline, worker_name=self.name)
                self.set_state(WorkerStatus.BUSY, pipeline=pipeline)
            self.heartbeat(heartbeat_ttl, pipeline=pipeline)
            job.heartbeat(now(), heartbeat_ttl, pipeline=pipeline)
            job.prepare_for_execution(self.name, pipeline=pipeline)
            if remove_from_intermediate_queue:
                pipeline.lrem(Queue(job.origin, connection=self.connection).intermediate_queue_key, 1, job.id)
            pipeline.exists(job.dependents_key)
            execution_id = _execution_id(job)
            if execution_id is not None:
                started_at = self.transitions.queue_start_attempt(pipeline, execution_id, self.name)
            replies = pipeline.execute(raise_on_error=False)
        ours = replies[-2:] if execution_id is not None else replies[-1:]
        errors = [reply for reply in replies[:len(replies) - len(ours)] if isinstance(reply, Exception)]
        if errors:
            raise errors[0]  # as RQ's pipeline would have
        self._nd_had_dependents = None if isinstance(ours[0], Exception) else bool(ours[0])
        if execution_id is not None and not isinstance(ours[-1], Exception):
            # run_execution takes it from here; on an error it runs start_attempt itself and reports it.
            setattr(job, ATTEMPT_STARTED_ATTR, attempt_started(ours[-1], started_at))
        self.procline(f"Processing {job.func_name} from {job.origin} since {time.time()}")

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        if not self.inline:
            super().handle_execution_ended(job, queue, heartbeat_ttl)  # type: ignore[misc]
            return
        job.ended_at = now()

    # -- success without WATCH --------------------------------------------------------------------

    def handle_job_success(self, job: Job, queue: Queue, started_job_registry: Any) -> None:
        result_ttl = job.get_result_ttl(self.default_result_ttl)
        if (result_ttl == 0 or (job.repeats_left is not None and job.repeats_left > 0)
                or self._nd_had_dependents is not False):
            # Jobs deleted on success or repeated (never executions), and jobs that already had dependents
            # when they started: RQ's own WATCHed path, atomic with the dependents' enqueueing.
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
            try:
                enqueue_late_dependents(job, queue)
            except Exception:  # the job did succeed: never turn this into its failure
                self.log.exception("Worker %s: could not enqueue the dependents of job %s", self.name, job.id)
        took = job.ended_at - job.started_at
        if self.log_job_description:
            self.log.info("Successfully completed %s job in %ss on worker %s", job.description, took, self.name)
        else:
            self.log.info("Successfully completed job %s in %ss on worker %s", job.id, took, self.name)


def _execution_id(job: Job) -> str | None:
    try:
        return job.args[0] if job.func_name == FUNC_NAME and job.args else None
    except Exception:  # noqa: BLE001 - an unreadable job fails when RQ performs it, with RQ's own error
        return None


def enqueue_late_dependents(job: Job, queue: Queue) -> None:
    """Enqueue the dependents added to ``job`` while it ran, after its success MULTI.

    Like ``Queue.enqueue_dependents``, but a dependent is enqueued only while it is still ``deferred``,
    checked under WATCH of its key: with several parents finishing at once, another parent's worker may
    enqueue it first (RQ's own path avoids that by doing this inside the parent's WATCHed transaction).
    """
    connection = queue.connection
    with connection.pipeline() as pipe:
        for _ in range(MAX_WATCH_RETRIES):
            try:
                pipe.watch(job.dependents_key)
                ids = [as_text(raw) for raw in pipe.smembers(job.dependents_key)]
                if not ids:
                    return
                pipe.watch(*[queue.job_class.key_for(i) for i in ids])
                fetched = queue.job_class.fetch_many(ids, connection=connection, serializer=queue.serializer)
                ready = [d for d in fetched
                         if d is not None and d.get_status(refresh=False) == JobStatus.DEFERRED
                         and d.dependencies_are_met(parent_job=job, pipeline=pipe)]
                pipe.multi()
                for dependent in ready:
                    DeferredJobRegistry(dependent.origin, connection, job_class=queue.job_class,
                                        serializer=queue.serializer).remove(dependent, pipeline=pipe)
                    target = queue if dependent.origin == queue.name else queue.__class__(
                        name=dependent.origin, connection=connection, serializer=queue.serializer)
                    target._enqueue_job(dependent, pipeline=pipe, at_front=dependent.enqueue_at_front or False)
                    pipe.srem(job.dependents_key, dependent.id)
                pipe.execute()
                return
            except WatchError:
                continue
    raise RuntimeError(f"gave up after {MAX_WATCH_RETRIES} concurrent changes to the dependents of {job.id}")
