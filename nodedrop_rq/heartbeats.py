"""Heartbeats for the execution an inline worker is running.

RQ's SimpleWorker sends none while a job runs, so a long execution would look abandoned and be run a
second time by another worker. One long-lived thread per worker beats for whichever job is current
(starting a thread per job cost more than the job itself on trivial workflows).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rq.job import Job

log = logging.getLogger(__name__)


class RunningJobHeartbeat:
    def __init__(self, beat: Callable[[Job, float], None], interval: float) -> None:
        self._beat = beat
        self._interval = interval
        self._cond = threading.Condition()
        self._job: Job | None = None
        self._since = 0.0
        self._thread: threading.Thread | None = None

    @contextmanager
    def running(self, job: Job) -> Iterator[None]:
        with self._cond:
            self._job, self._since = job, time.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True, name="nodedrop-heartbeat")
                self._thread.start()
            self._cond.notify()
        try:
            yield
        finally:
            with self._cond:
                self._job = None
                self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._job is None:
                    self._cond.wait()
                job, since = self._job, self._since
                self._cond.wait(self._interval)
                if self._job is not job:
                    continue
            try:
                self._beat(job, time.monotonic() - since)
            except Exception as exc:  # noqa: BLE001 - a missed beat is retried on the next tick
                log.warning("heartbeat for %s failed: %s", job.id, exc)
