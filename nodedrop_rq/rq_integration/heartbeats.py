"""Heartbeats for the execution an inline worker is running.

RQ's SimpleWorker sends none while a job runs, so a long execution would look abandoned and be run a
second time by another worker. One long-lived thread per worker beats for whichever job is current
(starting a thread per job cost more than the job itself on trivial workflows).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rq.executions import Execution
from rq.job import Job

log = logging.getLogger(__name__)


class RunningJobHeartbeat:
    def __init__(self, beat: Callable[[Job, Execution], None], interval: float) -> None:
        self._beat = beat
        self._interval = interval
        self._cond = threading.Condition()
        self._job: Job | None = None
        self._execution: Execution | None = None
        self._thread: threading.Thread | None = None

    @contextmanager
    def running(self, job: Job, execution: Execution) -> Iterator[None]:
        with self._cond:
            self._job, self._execution = job, execution
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
                job, execution = self._job, self._execution
                self._cond.wait(self._interval)
                if self._job is not job:
                    continue
            try:
                self._beat(job, execution)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - a missed beat is retried on the next tick
                log.warning("heartbeat for %s failed: %s", job.id, exc)
