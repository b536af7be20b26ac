"""Registry maintenance under a short, owned lease, and the sweep that finds what RQ's cleanup misses.

RQ guards each queue's maintenance with ``rq:clean_registries:<queue>``, set for 899 s and deleted without
``finally``: a worker that dies or raises while holding it stops every worker from recovering abandoned
executions for 15 minutes. Our workers take redis-py's ``Lock`` on their own key instead, with a lease of
``MAINTENANCE_LEASE`` seconds, always released (also on warm shutdown), so a dead holder delays recovery
by at most that lease. Maintenance writes are fenced transitions, so two workers cleaning at once are
harmless.

Jobs a worker took off the queue and died with before beginning them go back on the queue after
``heartbeat_grace`` seconds (RQ's own intermediate-list cleanup takes 60 s or more). The sweep walks
each queue's index of unfinished executions and ends those RQ's tools removed the job of
(``job.delete()``, ``job.cancel()``, rq-dashboard) and running attempts whose RQ execution expired
where RQ's abandoned-job cleanup does not look (its job is no longer ``started``).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from redis import Redis
from redis.exceptions import LockError, RedisError
from rq import worker_registration
from rq.executions import Execution, ExecutionRegistry
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.registry import clean_registries as rq_clean_registries
from rq.utils import now

from nodedrop_rq import keys
from nodedrop_rq.connection import SERIALIZER
from nodedrop_rq.execution import status
from nodedrop_rq.execution.transitions import Transitions
from nodedrop_rq.rq_integration import names, private
from nodedrop_rq.rq_integration.jobs import record_attempt_end
from nodedrop_rq.settings import Settings

if TYPE_CHECKING:
    from rq.worker import BaseWorker

log = logging.getLogger(__name__)

MAINTENANCE_LEASE = 10
# Unfinished executions looked at per queue and pass (oldest first); the rest wait for later passes.
SWEEP_BATCH = 2000

LOST = {"message": "the worker running this execution died (its RQ execution expired)", "kind": "abandoned"}


def clean_registries(worker: BaseWorker, settings: Settings) -> None:
    """What ``BaseWorker.clean_registries`` does, under our lease, plus the sweep."""
    for queue in worker.queues:
        # RQ's cleanup fails abandoned jobs with the queue's job class: the worker's, which keeps the
        # outcome in the execution (execution_job.py).
        queue.job_class = worker.job_class
        lock = worker.connection.lock(keys.maintenance_lock(queue.name), timeout=MAINTENANCE_LEASE,
                                      blocking=False)
        if not lock.acquire(blocking=False):
            continue
        try:
            worker.log.debug("Worker %s: cleaning registries for queue %s", worker.name, queue.name)
            sweep(worker.connection, settings, queue)
            redeliver_stuck(worker.connection, settings, queue)
            try:
                lock.reacquire()  # a fresh lease for RQ's part, so a long pass does not overlap another's
            except LockError:
                continue  # our lease ran out and another worker holds it now: it does the rest
            rq_clean_registries(queue, private.exception_handlers(worker))
            worker_registration.clean_worker_registry(queue)
            queue.intermediate_queue.cleanup(worker, queue)
        finally:
            try:
                lock.release()
            except (LockError, RedisError):  # expired meanwhile, or Redis went away: the lease ends it
                pass
    worker.last_cleaned_at = now()


def sweep(connection: Redis, settings: Settings, queue: Queue) -> None:
    # Redis looks at every unfinished execution and answers only with those that may need something done
    # (a backlog of thousands of waiting executions whose jobs are queued costs one call, not three
    # commands each: the pipeline of those cost the worker holding the lease 30 µs per execution per pass).
    scheduled = names.registries(queue.name)[3]
    rows = connection.eval(_SWEEP, 1, keys.active(queue.name), keys.execution(""), Job.key_for(""), scheduled,
                           SWEEP_BATCH, *sorted(status.TERMINAL))
    transitions = Transitions(connection, settings, failed_registry=names.failed_registry)
    orphans: list[str] = []
    for raw_id, raw_current, attempt, token, raw_job_status, due in rows:
        execution_id, current = raw_id.decode(), raw_current.decode()
        job_status = raw_job_status.decode() or None
        try:
            if job_status in (None, JobStatus.CANCELED):
                _job_removed(connection, transitions, queue, execution_id, current, int(attempt or 0))
            elif current == status.RUNNING and token:
                _maybe_lost(connection, queue, execution_id, token.decode(), job_status)
            elif _nowhere(job_status, due or None):
                orphans.append(execution_id)
        except RedisError as exc:
            log.warning("maintenance of execution %s failed: %s", execution_id, exc)
    _redeliver_orphans(connection, settings, queue, orphans)


# KEYS: the queue's index of unfinished executions. ARGV: the execution key prefix, the job key prefix, the
# queue's scheduled registry, how many (oldest first) to look at, the terminal statuses. Drops from the index
# the executions that ended or expired; returns {id, status, attempt, token, job status, due} of those that
# may need the sweep: the job is gone, cancelled, finished or failed, or `scheduled` in no registry, or the
# execution runs. ('' for each missing value, due 1 or ''.)
_SWEEP = """
local terminal = {}
for i = 5, #ARGV do terminal[ARGV[i]] = true end
local rows = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[4]) - 1)) do
  local h = redis.call('HMGET', ARGV[1] .. id, 'status', 'attempt', 'token')
  local current = h[1]
  if not current or terminal[current] then
    redis.call('ZREM', KEYS[1], id)
  else
    local job = redis.call('HGET', ARGV[2] .. id, 'status')
    local due = redis.call('ZSCORE', ARGV[3], id)
    if not job or job == 'canceled' or job == 'finished' or job == 'failed' or current == 'running'
        or (job == 'scheduled' and not due) then
      rows[#rows + 1] = {id, current, h[2] or '', h[3] or '', job or '', due and '1' or ''}
    end
  end
end
return rows
"""


def _nowhere(job_status: str | None, due: object) -> bool:
    """A waiting execution whose RQ job will never be delivered: it ended (RQ finished or failed it while
    the execution still waits) or it reads `scheduled` in no scheduled registry (its worker died between
    RQ's two writes of a retry). A stopped job is left alone: the stop cancels its execution."""
    return job_status in (JobStatus.FINISHED, JobStatus.FAILED) or (
        job_status == JobStatus.SCHEDULED and due is None)


def _redeliver_orphans(connection: Redis, settings: Settings, queue: Queue, orphans: list[str]) -> None:
    """Deliver again the orphans seen in two passes ``heartbeat_grace`` seconds apart (a job between two
    of RQ's writes is not one)."""
    seen_key = keys.orphans_seen(queue.name)
    for execution_id in _seen_for(connection, seen_key, orphans, settings.heartbeat_grace):
        job = Job.fetch(execution_id, connection=connection, serializer=SERIALIZER)
        queue.enqueue_job(job)
        connection.hdel(seen_key, execution_id)
        log.info("execution %s: waiting while its RQ job was %s; delivered again", execution_id,
                 job.get_status(refresh=False))


def redeliver_stuck(connection: Redis, settings: Settings, queue: Queue) -> None:
    """Put back on the queue the jobs a worker took off it (into RQ's intermediate list) and died with
    before it began them. A live worker begins a job milliseconds after taking it; RQ's own cleanup waits
    60 s or more, so we act once an entry has sat there ``heartbeat_grace`` seconds with no live attempt."""
    intermediate = queue.intermediate_queue_key
    seen_key = keys.intermediate_seen(queue.name)
    ids = [i.decode() for i in connection.lrange(intermediate, 0, -1)]
    for job_id in _seen_for(connection, seen_key, ids, settings.heartbeat_grace):
        if _live_executions(connection, job_id):
            continue  # an attempt of it is alive
        job_status = connection.hget(Job.key_for(job_id), "status")
        current = connection.hget(keys.execution(job_id), "status")
        if job_status == JobStatus.QUEUED.encode() and current in (status.QUEUED.encode(), status.RETRYING.encode()):
            if connection.eval(_REDELIVER, 2, intermediate, queue.key, job_id):
                log.info("execution %s: its worker died before starting it; delivered again", job_id)
        elif job_status is None or current is None or current.decode() in status.TERMINAL:
            connection.lrem(intermediate, 1, job_id)
        connection.hdel(seen_key, job_id)


def _seen_for(connection: Redis, seen_key: str, ids: list[str], seconds: float) -> list[str]:
    """Of ``ids``, those first seen (in the hash ``seen_key``) at least ``seconds`` ago. Notes when the
    others were first seen, and forgets the entries of ids no longer there."""
    seen = {k.decode(): float(v) for k, v in connection.hgetall(seen_key).items()}
    gone = [i for i in seen if i not in ids]
    if gone:
        connection.hdel(seen_key, *gone)
    clock = time.time()
    new = {i: clock for i in ids if i not in seen}
    if new:
        connection.hset(seen_key, mapping=new)
    return [i for i in ids if i in seen and clock - seen[i] >= seconds]


def _live_executions(connection: Redis, job_id: str) -> int:
    """How many of the job's RQ executions still have their hash (it expires with the heartbeat; the
    job's execution registry keeps entries a minute longer)."""
    ids = ExecutionRegistry(job_id, connection).get_execution_ids()
    return sum(connection.exists(Execution(i, job_id, connection).key) for i in ids) if ids else 0


# Moves a job id from the intermediate list back to its queue, only if it is still in the list.
_REDELIVER = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[1])
  return 1
end
return 0
"""


def _job_removed(connection: Redis, transitions: Transitions, queue: Queue, execution_id: str, current: str,
                 attempt: int) -> None:
    if current in (status.QUEUED, status.RETRYING):
        if transitions.cancel_waiting(execution_id, queue.name, attempt, removed=True):
            log.info("execution %s cancelled: its RQ job was deleted or cancelled", execution_id)
        return
    # Running: stop at the next node boundary, as a cancel does.
    connection.hset(keys.execution(execution_id), "cancelRequested", "1")


def _maybe_lost(connection: Redis, queue: Queue, execution_id: str, token: str, job_status: str | None) -> None:
    if connection.exists(Execution(token, execution_id, connection).key):
        return  # its worker still beats for it
    if job_status == JobStatus.STARTED:
        return  # RQ's abandoned-job cleanup handles it (on_execution_failure records it)
    job = Job.fetch(execution_id, connection=connection, serializer=SERIALIZER)
    target = record_attempt_end(connection, job, token=token, error=LOST)
    if target is None:
        return
    with connection.pipeline() as pipe:
        if target == status.RETRYING:
            job.retry(queue, pipe)
        else:  # as RQ's own cleanup does for an abandoned job without retries
            job.set_status(JobStatus.FAILED, pipeline=pipe)
            job.failed_job_registry.add(job, ttl=job.failure_ttl, exc_string=LOST["message"], pipeline=pipe)
        pipe.execute()
    log.info("execution %s: attempt lost with its worker; now %s", execution_id, target)
