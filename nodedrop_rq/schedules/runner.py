"""``nodedrop-rq scheduler``: rq-scheduler's run loop, firing our schedules as executions.

Several schedulers may run. Each round (every ``interval`` s) a scheduler tries rq-scheduler's lock
(``rq:scheduler_lock``); the one that gets it fires every due schedule and releases it; the others skip that
round and try again at the next. Unlike stock rq-scheduler (lease interval + 10 s, released by whoever
holds the key), the lock here holds a random token, has a short lease (``NODEDROP_SCHEDULER_LOCK_TTL``,
default 5 s) renewed before each schedule fired, and is released only by its owner. A scheduler that dies
holding it is replaced within lease + interval; one that dies between rounds within one interval.

Firing a due schedule (:meth:`ScheduleRunner.fire`):

1. re-read its score; skip it if it is gone (removed) or no longer due (another scheduler handled it);
2. :func:`~nodedrop_rq.schedules.firing.fire_schedule` submits the execution with the idempotency key
   ``schedule:<id>:<scheduled time>``, so repeating a firing can never create a second execution;
3. a compare-and-set script moves the score to the next firing (or deletes a one-off), only if the score
   is still the one fired and the schedule still exists, so a removed schedule never comes back.

Missed firings (no scheduler ran at the time) fire once on recovery; see ``Schedule.following``.
"""

from __future__ import annotations

import logging
import signal
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq_scheduler import Scheduler

from nodedrop_rq import keys
from nodedrop_rq.routing import QueueRouter, RoutedRedisError
from nodedrop_rq.schedules.definitions import Schedule
from nodedrop_rq.schedules.firing import fire_schedule
from nodedrop_rq.schedules.rq_json import JSONJob, JSONQueue
from nodedrop_rq.settings import Settings
from nodedrop_rq.workflow import WorkflowInvalid
from nodedrop_rq.workflows_store import WorkflowNotFound

log = logging.getLogger(__name__)

# Schedules handled per round at most; the rest wait for the next round (bounds the time the lock is held).
MAX_PER_ROUND = 500

# KEYS: lock; ARGV: token, lease ms. Take the lock if free (or already ours, from before a Redis outage).
_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if not holder then return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) and 1 end
if holder == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# KEYS: lock; ARGV: token, lease ms. Renew the lease only while we still own it.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# KEYS: lock; ARGV: token. Release only our own lock (stock rq-scheduler deletes whatever is there).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS: scheduled set, last-fire hash, job hash; ARGV: schedule id, fired score, fired-at ISO, next score
# ('' = one-off, delete it). Applies only if the schedule still has the score that was fired.
_ADVANCE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
if ARGV[4] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('DEL', KEYS[3])
  redis.call('HDEL', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
end
return 1
"""


class _QuietLockLog(logging.LoggerAdapter):
    """rq-scheduler warns on every round a standby skips; that is normal here, so it is a debug line."""

    def warning(self, msg: object, *args: Any, **kwargs: Any) -> None:
        if isinstance(msg, str) and msg.startswith("Lock already taken"):
            self.debug("lock held by another scheduler; standing by")
            return
        super().warning(msg, *args, **kwargs)


class ScheduleRunner(Scheduler):
    def __init__(self, connection: Redis, settings: Settings, interval: float | None = None,
                 lock_ttl: float | None = None, token: str | None = None) -> None:
        interval = float(interval if interval is not None else settings.scheduler_interval)
        super().__init__(queue_name=settings.queue, connection=connection, interval=interval, job_class=JSONJob,
                         queue_class=JSONQueue)
        self.settings = settings
        ttl = float(lock_ttl if lock_ttl is not None else settings.scheduler_lock_ttl)
        # The lease must outlast a round's pause between renewals; never shorter than two intervals.
        self.lock_ttl_ms = int(max(ttl, 2 * interval, 1.0) * 1000)
        # Identifies our lock; pass the previous runner's after a Redis outage to reclaim a lock it held.
        self.token = token or uuid.uuid4().hex
        self._stopping = False
        self.log = _QuietLockLog(logging.getLogger("rq_scheduler.scheduler"), {})
        self._acquire = connection.register_script(_ACQUIRE)
        self._renew = connection.register_script(_RENEW)
        self._release = connection.register_script(_RELEASE)
        self._advance = connection.register_script(_ADVANCE)
        # Schedules live here (REDIS_URL); each fires into its queue's Redis.
        self.router = QueueRouter(settings, socket_timeout=10, home_client=connection)
        self._unreachable: set[str] = set()

    def _install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT end the loop; rq-scheduler's ``finally`` then releases the lock and registers death."""

        def stop(signum: int, frame: object) -> None:
            self.log.info("Shutting down RQ scheduler...")
            self._stopping = True
            raise SystemExit(0)

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)

    def run(self, burst: bool = False) -> None:
        """rq-scheduler's loop. Raises RedisError when Redis goes away (the caller waits and starts a new
        runner) and SystemExit on SIGTERM/SIGINT, also when Redis fails during the shutdown."""
        self._stopping = False
        try:
            super().run(burst=burst)
        except RedisError:
            if self._stopping:
                raise SystemExit(0) from None
            raise

    # -- the lock ---------------------------------------------------------------------------------

    def acquire_lock(self) -> bool:
        self._lock_acquired = bool(self._acquire(keys=[self.scheduler_lock_key], args=[self.token, self.lock_ttl_ms]))
        return self._lock_acquired

    def renew_lock(self) -> bool:
        if not self._lock_acquired:
            return False
        self._lock_acquired = bool(self._renew(keys=[self.scheduler_lock_key], args=[self.token, self.lock_ttl_ms]))
        return self._lock_acquired

    def remove_lock(self) -> None:
        if self._lock_acquired:
            self._lock_acquired = False
            self._release(keys=[self.scheduler_lock_key], args=[self.token])

    # -- firing -----------------------------------------------------------------------------------

    def enqueue_jobs(self) -> list[str]:
        """Fire every due schedule (rq-scheduler calls this while we hold the lock). Returns their ids."""
        due = self.connection.zrangebyscore(self.scheduled_jobs_key, 0, time.time(), start=0, num=MAX_PER_ROUND)
        handled = []
        for raw_id in due:
            if not self.renew_lock():
                log.warning("lost the scheduler lock (lease %.1f s ran out); leaving the rest to the next round",
                            self.lock_ttl_ms / 1000)
                break
            job_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
            try:
                job = self.job_class.fetch(job_id, connection=self.connection)
            except NoSuchJobError:
                self.cancel(job_id)  # as rq-scheduler does: a score without its job
                continue
            except RedisError:
                raise
            except Exception as exc:  # noqa: BLE001 - e.g. a pickled job of another application
                log.error("cannot read scheduled job %s (%s: %s); leaving it alone", job_id, type(exc).__name__, exc)
                continue
            self.enqueue_job(job)
            handled.append(job_id)
        return handled

    def enqueue_job(self, job: Job) -> None:
        if "nd_kind" not in job.meta:
            super().enqueue_job(job)  # not one of ours: rq-scheduler's own behaviour (into its queue, as JSON)
            return
        self.fire(job)

    def fire(self, job: Job) -> str | None:
        """Fire one due schedule; returns the execution id (None if skipped or refused)."""
        score = self.connection.zscore(self.scheduled_jobs_key, job.id)
        now = time.time()
        if score is None or score > now:
            return None  # removed meanwhile, or already handled by another scheduler
        schedule = Schedule.from_meta(job.meta)
        schedule_id, workflow, items = job.args[0], job.args[1], job.args[2] if len(job.args) > 2 else None
        execution_id = None
        try:
            execution_id = fire_schedule(schedule_id, workflow, items, int(score), settings=self.settings,
                                         queue=job.origin, router=self.router,
                                         workflow_id=(job.kwargs or {}).get("workflow_id"))
            self._unreachable.discard(self.router.url_for(job.origin))
            log.info("schedule %s fired (due %s, %.1f s late): execution %s", schedule_id,
                     datetime.fromtimestamp(score, timezone.utc).isoformat(), now - score, execution_id)
        except RoutedRedisError as exc:
            if exc.url == self.router.home.url:
                raise
            # Another server's queue: this firing waits for it (the score stays), the other schedules fire.
            if exc.url not in self._unreachable:
                log.warning("schedule %s waits: %s", schedule_id, exc)
                self._unreachable.add(exc.url)
            return None
        except RedisError:
            raise  # nothing moved: the firing is retried once Redis answers
        except WorkflowNotFound as exc:
            log.error("schedule %s not fired: %s (deleted?)", schedule_id, exc)
        except WorkflowInvalid as exc:
            log.error("schedule %s not fired: its workflow is no longer valid under the current limits: %s",
                      schedule_id, exc)
        except Exception:
            log.exception("schedule %s not fired", schedule_id)
        fired_at = datetime.fromtimestamp(now, timezone.utc)
        upcoming = schedule.following(datetime.fromtimestamp(score, timezone.utc), fired_at)
        self._advance(keys=[self.scheduled_jobs_key, keys.schedule_fires(), job.key],
                      args=[job.id, repr(score), fired_at.isoformat(),
                            "" if upcoming is None else int(upcoming.timestamp())])
        return execution_id
