"""Every private RQ name nodedrop-rq relies on, in one place.

RQ offers no public way to do these few things; each entry says why we need it. ``missing()`` lists the
names an installed RQ lacks, and the test suite fails with that list when an RQ release removes one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rq import job_lifecycle
from rq.job import Job
from rq.scheduler import RQScheduler
from rq.worker import Worker
from rq.worker_pool import WorkerPool

if TYPE_CHECKING:
    from rq.worker import BaseWorker

# (owner, attribute, why)
PRIVATE_NAMES: tuple[tuple[Any, str, str], ...] = (
    (Worker, "_start_scheduler", "the worker starts our RetryScheduler (short lock lease) instead of RQ's"),
    (RQScheduler, "_acquired_locks", "RetryScheduler shortens the leases of the locks it holds"),
    (Job, "_handle_success", "the success MULTI without WATCH writes the job's finish as RQ's does; "
                             "ExecutionJob overrides it to write no results stream"),
    (Job, "_handle_failure", "ExecutionJob overrides it to fail a job into RQ's failed registry without a "
                             "results stream (RQ calls it on every failure path)"),
    (Job, "_status", "that MULTI leaves the job's cached status FINISHED, as RQ's handle_job_success does"),
    (Worker, "_exc_handlers", "maintenance and our quieter handle_exception pass the worker's exception "
                              "handlers on, as RQ does"),
    (Worker, "_stopped_job_id", "a stopped job's attempt is recorded as cancelled, not failed"),
    (RQScheduler, "_stop_requested", "RetryScheduler stops waiting out a Redis outage when asked to stop"),
    (RQScheduler, "_process", "the pool's supervisor restarts its scheduler process when it is gone, as RQ's "
                              "worker maintenance does"),
    (WorkerPool, "_queue_names", "the pool builds its worker processes with our settings (RQ would not pass "
                                 "worker_ttl and the intervals on)"),
    (WorkerPool, "_connection_class", "as above: the children's Redis connection"),
    (WorkerPool, "_pool_class", "as above"),
    (WorkerPool, "_pool_kwargs", "as above"),
    (job_lifecycle, "call_exception_handlers", "an internal function (job_lifecycle.py is not a hook module): "
                                               "a node failure, logged in one line, still reaches the handlers"),
)

# Instance attributes exist only on a constructed object: these are checked on a worker/job instance.
_INSTANCE_ATTRIBUTES = {"_exc_handlers", "_stopped_job_id", "_status", "_acquired_locks", "_stop_requested",
                        "_process",
                        "_queue_names", "_connection_class", "_pool_class", "_pool_kwargs"}


def scheduler_process(scheduler: RQScheduler) -> Any:
    """The scheduler's process (None before its first start)."""
    return scheduler._process


def exception_handlers(worker: BaseWorker) -> list[Any]:
    return list(worker._exc_handlers)


def missing(instances: dict[type, object] | None = None) -> list[str]:
    """``owner.attribute`` for each listed private name the installed RQ lacks. ``instances`` maps an
    owner class to an instance of it, for the names that only instances carry."""
    absent = []
    for owner, attribute, why in PRIVATE_NAMES:
        target = (instances or {}).get(owner) if attribute in _INSTANCE_ATTRIBUTES else owner
        if target is None or not hasattr(target, attribute):
            absent.append(f"{owner.__name__}.{attribute} ({why})")
    return absent
