"""RQ's key names and serializer, for the readers outside this package (stats, the exporter, the API).

Built from RQ's own templates and constants, so they follow RQ's ``RQ_KEY_PREFIX``.
"""

from __future__ import annotations

from rq.executions import WORKER_EXECUTIONS_KEY_TEMPLATE
from rq.job import Job
from rq.queue import Queue
from rq.registry import FailedJobRegistry, FinishedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer
from rq.worker_registration import REDIS_WORKER_KEYS

# One serializer for every reader and writer (workers, API, exporter, rq-dashboard --json, other
# languages): jobs never hold pickle.
SERIALIZER = JSONSerializer
SERIALIZER_PATH = "rq.serializers.JSONSerializer"

# Set of every live worker's key.
WORKERS = REDIS_WORKER_KEYS
JOB_KEY_PREFIX = Job.redis_job_namespace_prefix


def queue(name: str) -> str:
    """List: the ids of the queue's waiting jobs."""
    return Queue.redis_queue_namespace_prefix + name


def registries(name: str) -> tuple[str, str, str, str]:
    """Sorted sets of the queue: started (wip), finished, failed, scheduled."""
    return (StartedJobRegistry.key_template.format(name), FinishedJobRegistry.key_template.format(name),
            FailedJobRegistry.key_template.format(name), ScheduledJobRegistry.key_template.format(name))


def failed_registry(name: str) -> str:
    """Sorted set: the queue's failed jobs (RQ's FailedJobRegistry)."""
    return FailedJobRegistry.key_template.format(name)


def worker_executions(worker_name: str) -> str:
    """Set: the ``job_id:execution_id`` keys of the executions a worker is running."""
    return WORKER_EXECUTIONS_KEY_TEMPLATE.format(worker_name)
