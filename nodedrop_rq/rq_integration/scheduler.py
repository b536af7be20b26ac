"""RQ's scheduler (it moves due retries back to the queue) with a short lock lease.

RQ leases the per-queue scheduler lock for ``interval + 60`` s. When the worker holding it is SIGKILLed,
no retry of any execution fires until the lease runs out: a minute of stalled retries. We shorten the
lease after every acquire and heartbeat (once a second), so another worker takes over within seconds.
It also waits out a Redis outage instead of dying with a traceback.
"""

from __future__ import annotations

import time

from redis.exceptions import ConnectionError, TimeoutError
from rq.scheduler import RQScheduler

LOCK_LEASE_SECONDS = 8


class RetryScheduler(RQScheduler):
    def work(self) -> None:
        # RQ's scheduler process dies with a traceback when Redis goes away (and the worker starts a new one
        # at its next maintenance); ours logs one line, waits for Redis and carries on.
        while True:
            try:
                super().work()
                return
            except (ConnectionError, TimeoutError) as exc:
                self.log.warning("Scheduler: Redis does not answer (%s); waiting for it", exc)
                self._wait_for_redis()
                self.log.info("Scheduler: Redis answers again")

    def _wait_for_redis(self) -> None:
        delay = 0.5
        while not self._stop_requested:
            try:
                self.connection.ping()
                return
            except (ConnectionError, TimeoutError):
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def acquire_locks(self, auto_start: bool = False) -> set[str]:
        locks = super().acquire_locks(auto_start=auto_start)
        self._shorten_leases()
        return locks

    def heartbeat(self) -> None:
        super().heartbeat()
        self._shorten_leases()

    def _shorten_leases(self) -> None:
        if not self._acquired_locks:
            return
        with self.connection.pipeline() as pipe:
            for name in self._acquired_locks:
                pipe.expire(self.get_locking_key(name), LOCK_LEASE_SECONDS)
            pipe.execute()
