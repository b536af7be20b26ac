"""ExecutionWorkers that SIGKILL themselves at one chosen point, for fault tests run with plain
``rq worker -w tests.support.dying_workers.<Class>``: the kill is real, only its moment is chosen."""

from __future__ import annotations

import os
import signal
from typing import Any

from nodedrop_rq import keys
from nodedrop_rq.rq_integration.maintenance import MAINTENANCE_LEASE
from nodedrop_rq.worker import ExecutionWorker


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class DiesAfterDequeue(ExecutionWorker):
    """Takes a job off the queue (into RQ's intermediate list) and dies before preparing it."""

    def execute_job(self, job: Any, queue: Any) -> None:
        _die()


class DiesAfterPrepareExecution(ExecutionWorker):
    """Dies after RQ's parent-side preparation (the job is in the started registry), before the attempt."""

    def execute_job(self, job: Any, queue: Any) -> None:
        self.prepare_execution(job)
        _die()


class DiesHoldingMaintenanceLocks(ExecutionWorker):
    """Takes RQ's own 899 s maintenance lock and ours, then dies in the middle of maintenance."""

    def clean_registries(self) -> None:
        for queue in self.queues:
            queue.acquire_maintenance_lock()
            self.connection.lock(keys.maintenance_lock(queue.name), timeout=MAINTENANCE_LEASE).acquire(blocking=False)
        _die()
