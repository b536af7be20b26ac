"""``FewerRoundTrips``: RQ 3's per-job protocol with the redundant Redis round trips left out.

RQ's worker spends about 18 round trips on a job (``bench/round_trips.py``). This mixin, placed before
``rq.Worker`` in :class:`~nodedrop_rq.rq_integration.worker.ExecutionWorker`, leaves out:

* worker heartbeats that would not extend the worker key's expiry beyond what the last full one granted
  a moment ago (RQ beats after each job and before and after each dequeue), and RQ's unpipelined
  HSET/EXPIRE/EXPIRE of each one that is sent (:meth:`heartbeat`);
* the suspension check (``rq suspend``) right after a job: the job's success MULTI reads the key;
* inline, the parent's and the job's preparation pipelines (``prepare_execution`` and
  ``prepare_job_execution``) become one, which also starts the attempt (the start transition); in a fork
  the horse's preparation and the start are one pipeline;
* the job heartbeat of the preparation, whose one field ``prepare_for_execution`` writes again;
* RQ's separate LMOVE and HGETALL of the dequeue (``dequeue.py``: one script);
* inline, ``handle_execution_ended``'s job heartbeat: the worker's heartbeat thread beats until the
  success pipeline has run;
* ``handle_job_success``'s WATCH and read of the dependents key, for jobs that had no dependents when they
  started (read in the preparation pipeline): the success MULTI reads the set, and dependents added while
  the job ran are enqueued right after it (:func:`enqueue_late_dependents`). Jobs that had dependents,
  repeat, are rate limited or keep no result take RQ's own path unchanged;
* inline, the worker's ``idle`` state is written by that MULTI, so the dequeue loop need not write it.

The plain commands of the preparation and success transactions are sent as one script call each
(``batched.py``). The attempt's outcome is its own fenced transition (run by the job function), never part
of RQ's MULTI.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from redis.client import Pipeline
from redis.exceptions import NoScriptError, RedisError, WatchError
from rq.executions import Execution
from rq.intermediate_queue import IntermediateQueue
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.suspension import WORKERS_SUSPENDED
from rq.utils import as_text, now
from rq.worker import WorkerStatus

from nodedrop_rq.execution.transitions import Transitions, parse_start
from nodedrop_rq.rq_integration import batched, names
from nodedrop_rq.rq_integration.jobs import FUNC_NAME, STARTED_ATTR

# Bounds the retries of a WATCHed transaction that other clients keep changing under us.
MAX_WATCH_RETRIES = 100
# Heartbeats closer together than this, with no shorter lease granted in between, are redundant.
HEARTBEAT_MIN_INTERVAL = 1.0


class FewerRoundTrips:
    inline: bool
    transitions: Transitions
    _nd_full_beat_at = float("-inf")
    _nd_known_not_suspended = False
    _nd_pending_prep: Pipeline | None = None
    # Whether the running job had dependents when it started (None: not known).
    _nd_had_dependents: bool | None = None

    # -- worker heartbeats, state and suspension -------------------------------------------------

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
        with self.connection.pipeline(transaction=False) as pipe:
            super().heartbeat(timeout, pipeline=pipe)  # type: ignore[misc]
            pipe.execute()
        outage = getattr(self, "_nd_outage", None)
        if outage is not None:
            outage.answered(self.log, self.name)

    def check_for_suspension(self, burst: bool) -> None:
        if self._nd_known_not_suspended:
            self._nd_known_not_suspended = False  # read by the success MULTI of the job just finished
            return
        super().check_for_suspension(burst)  # type: ignore[misc]

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        if pipeline is None and state == WorkerStatus.IDLE and self.get_state() == WorkerStatus.IDLE:
            return  # only this worker writes its state, and it already wrote idle
        super().set_state(state, pipeline=pipeline)  # type: ignore[misc]

    # -- one preparation pipeline ------------------------------------------------------------------

    def defer_preparation(self, job: Job) -> Execution:
        """Inline: ``rq.executions.prepare_execution``'s writes, left in a pipeline that
        ``prepare_job_execution`` sends together with its own."""
        pipe = self.connection.pipeline()
        execution = Execution.create(job, self.get_heartbeat_ttl(job), pipeline=pipe, worker_name=self.name)
        self.executions[execution.id] = execution
        self.set_state(WorkerStatus.BUSY, pipeline=pipe)
        self._nd_pending_prep = pipe
        return execution

    def prepare_job_execution(self, job: Job, remove_from_intermediate_queue: bool = False) -> None:
        # Worker.prepare_job_execution's writes, then whether the job has dependents yet (see
        # handle_job_success) and the start transition of the attempt (fenced with this RQ execution's id).
        pipe, self._nd_pending_prep = self._nd_pending_prep, None
        pipe = pipe if pipe is not None else self.connection.pipeline()
        self._nd_had_dependents = None
        execution = self.execution
        with pipe:
            heartbeat_ttl = self.get_heartbeat_ttl(job)
            self.heartbeat(heartbeat_ttl, pipeline=pipe)
            # (RQ's job.heartbeat here writes the one field prepare_for_execution writes again.)
            job.prepare_for_execution(self.name, pipeline=pipe)
            pipe.persist(job.key)
            if remove_from_intermediate_queue:
                # RQ builds a Queue here (resolving its serializer); the key alone is enough.
                pipe.lrem(IntermediateQueue.get_intermediate_queue_key(names.queue(job.origin)), 1, job.id)
            ours = 1
            pipe.exists(job.dependents_key)
            execution_id = _execution_id(job)
            if execution_id is not None and execution is not None:
                start = self.transitions.queue_start(pipe, execution_id, job.origin, self.name, execution.id,
                                                     _epoch(job.enqueued_at))
                ours = 2
            replies = batched.execute(pipe)
        errors = [reply for reply in replies[:-ours] if isinstance(reply, Exception)]
        if errors:
            raise errors[0]  # as RQ's pipeline would have
        dependents = replies[-ours]
        self._nd_had_dependents = None if isinstance(dependents, Exception) else bool(dependents)
        if ours == 2:
            reply = replies[-1]
            try:
                if isinstance(reply, NoScriptError):  # Redis lost its script cache (a restart): load it
                    job.__dict__[STARTED_ATTR] = self.transitions.start_again(
                        execution_id, job.origin, self.name, execution.id, start[0], _epoch(job.enqueued_at))
                elif isinstance(reply, Exception):
                    raise reply
                else:
                    job.__dict__[STARTED_ATTR] = parse_start(reply, *start)
            except RedisError as exc:
                self.log.warning("Worker %s: could not start execution %s: %s", self.name, job.id, exc)
        self.procline(f"Processing {job.func_name} from {job.origin} since {time.time()}")

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        if not self.inline:
            super().handle_execution_ended(job, queue, heartbeat_ttl)  # type: ignore[misc]
            return
        job.ended_at = now()

    # -- success without WATCH --------------------------------------------------------------------

    def handle_job_success(self, job: Job, queue: Queue, started_job_registry: Any, execution: Execution) -> None:
        result_ttl = job.get_result_ttl(self.default_result_ttl)
        if (result_ttl == 0 or (job.repeats_left is not None and job.repeats_left > 0) or job.has_rate_limit
                or self._nd_had_dependents is not False):
            super().handle_job_success(job, queue, started_job_registry, execution)  # type: ignore[misc]
            return
        assert job.started_at and job.ended_at
        with self.connection.pipeline() as pipe:
            self.increment_successful_job_count(pipeline=pipe)
            self.increment_total_working_time(job.ended_at - job.started_at, pipe)
            job._handle_success(result_ttl, pipeline=pipe, worker_name=self.name, execution_id=execution.id,
                                execution_started_at=execution.created_at, execution_ended_at=job.ended_at)
            job.cleanup(result_ttl, pipeline=pipe, remove_from_queue=False)
            job._status = JobStatus.FINISHED
            self.cleanup_execution(job, pipeline=pipe, execution=execution)
            if self.inline:
                self.set_state(WorkerStatus.IDLE, pipeline=pipe)
                self.heartbeat(pipeline=pipe)
            pipe.exists(WORKERS_SUSPENDED)
            pipe.smembers(job.dependents_key)
            replies = batched.execute(pipe)
        errors = [reply for reply in replies if isinstance(reply, Exception)]
        if errors:
            raise errors[0]  # as RQ's pipeline would have
        *_, suspended, dependents = replies
        # In a fork the horse runs this, and the worker checks for itself.
        self._nd_known_not_suspended = not suspended and not self.is_horse
        if dependents:
            try:
                enqueue_late_dependents(job, queue)
            except Exception:  # the job did succeed: never turn this into its failure
                self.log.exception("Worker %s: could not enqueue the dependents of job %s", self.name, job.id)
        took = job.ended_at - job.started_at
        self.log.info("Successfully completed job %s in %ss on worker %s", job.id, took, self.name)


def _epoch(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    # RQ 3 writes and reads enqueued_at as UTC; an older producer's naive value means UTC too.
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def _execution_id(job: Job) -> str | None:
    try:
        return job.id if job.func_name == FUNC_NAME else None
    except Exception:  # noqa: BLE001 - an unreadable job fails when RQ performs it, with RQ's own error
        return None


def enqueue_late_dependents(job: Job, queue: Queue) -> None:
    """Enqueue the dependents added to ``job`` while it ran, after its success MULTI.

    As RQ's ``enqueue_dependents``, but only dependents still ``deferred`` (checked under WATCH of their
    keys): with several parents finishing at once, another parent's worker may have enqueued one first,
    and RQ's own path prevents that only inside the parent's WATCHed success transaction.
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
                handled = [i for i, dependent in zip(ids, fetched, strict=True)
                           if dependent is None or dependent.get_status(refresh=False) != JobStatus.DEFERRED]
                if handled:
                    pipe.multi()
                    pipe.srem(job.dependents_key, *handled)
                    pipe.execute()
                    continue
                ready = queue.move_dependents_to_ready(job, pipeline=pipe, refresh_job_status=False)
                pipe.execute()
                queue.enqueue_ready_jobs_by_queue(ready)
                return
            except WatchError:
                continue
    raise RuntimeError(f"gave up after {MAX_WATCH_RETRIES} concurrent changes to the dependents of {job.id}")
