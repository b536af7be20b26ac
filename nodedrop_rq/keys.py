"""Every Redis key and channel nodedrop-rq writes, in one place.

The worker, the API, the CLI and the exporter all build names here, so they cannot drift apart.
RQ's own keys (``rq:queue:<q>``, ``rq:wip:<q>``, ``rq:job:<id>``, ...) belong to RQ and are not listed.
"""

from __future__ import annotations

PREFIX = "nodedrop"

# Pub/sub channel for node and execution events; NodeDrop's UI listens on this name.
EVENTS_CHANNEL = "execution-events"


def execution(execution_id: str) -> str:
    """Hash: one execution's state. TTL EXECUTION_STATE_TTL while active, COMPLETION_TTL once terminal."""
    return f"{PREFIX}:execution:{execution_id}"


def document(digest: str) -> str:
    """String: a workflow document (canonical JSON), stored once under its SHA-256 for every execution
    of it. TTL: raised (never lowered) to what the longest-lived execution using it needs; see
    ``nodedrop_rq.documents``."""
    return f"{PREFIX}:document:{digest}"


def idempotency(key: str) -> str:
    """String: execution id submitted under an idempotency key. Same TTL as that execution's state."""
    return f"{PREFIX}:idempotency:{key}"


def counters(queue: str) -> str:
    """Hash: monotonic counters of one queue (completed, failed, retried, duration sum/count/buckets).

    No TTL: the exporter publishes these as Prometheus counters, which must never reset.
    """
    return f"{PREFIX}:counters:{queue}"


def active(queue: str) -> str:
    """Sorted set: ids of the queue's executions that are not finished (score: when they became active).
    Written only by the transition scripts; maintenance walks it to find executions whose RQ job was
    deleted or whose attempt's worker died where RQ's own cleanup does not look. No TTL."""
    return f"{PREFIX}:active:{queue}"


def maintenance_lock(queue: str) -> str:
    """String: redis-py Lock of the worker doing maintenance for a queue, with a short lease."""
    return f"{PREFIX}:maintenance:{queue}"


def intermediate_seen(queue: str) -> str:
    """Hash: job id -> when maintenance first saw it in RQ's intermediate list of the queue (entries
    leave with the job's entry). No TTL."""
    return f"{PREFIX}:intermediate-seen:{queue}"


def orphans_seen(queue: str) -> str:
    """Hash: execution id -> when maintenance first saw it waiting while its RQ job was in no queue or
    registry that delivers it. No TTL; entries leave with the condition."""
    return f"{PREFIX}:orphans-seen:{queue}"


def worker_concurrency() -> str:
    """Hash: worker name -> number of worker processes its pool runs. Entries of dead workers are
    ignored by readers, which join on RQ's live worker set; pools remove theirs on exit."""
    return f"{PREFIX}:worker-concurrency"


def queues() -> str:
    """Set: names of queues that executions were ever submitted to (for the exporter). No TTL."""
    return f"{PREFIX}:queues"


def schedule_fires() -> str:
    """Hash: schedule id -> ISO time of its last firing (for `schedule list`). Entries go with their
    schedule."""
    return f"{PREFIX}:schedule-fires"


def execution_events(execution_id: str) -> str:
    """Stream: the execution's events, as published on ``EVENTS_CHANNEL`` (capped at
    ``EVENT_LOG_MAX_ENTRIES``, approximately). Written by the transition and progress scripts together
    with the publish; TTL the state's while active, ``EVENT_LOG_TERMINAL_TTL`` after the terminal event.
    Read by ``GET /api/executions/{id}/events`` and ``submit --wait``: stream ids are the SSE ids."""
    return f"{PREFIX}:events:{execution_id}"


EVENT_LOG_MAX_ENTRIES = 1000
# Seconds an event log outlives its execution's terminal event: enough for a client to reconnect and
# read the end, short enough that finished executions keep no log (the state hash still answers).
EVENT_LOG_TERMINAL_TTL = 10

# Search indexes: sorted sets of execution ids scored by creation time (Unix seconds). The submit adds
# an execution to its status's index and its workflow-and-status's; every transition script moves it
# between them (a search without a status merges the six). No TTL: entries older than the longest an execution
# can live are trimmed by score when an index is read, and entries whose state expired sooner are removed
# by the read that meets them (nodedrop_rq/search.py).
SEARCH_PREFIX = f"{PREFIX}:search"


def search_status(status: str) -> str:
    return f"{SEARCH_PREFIX}:status:{status}"


# The status (which has no ':') first, so that no workflow id can collide with another's key.
SEARCH_WORKFLOW_STATUS = f"{SEARCH_PREFIX}:workflow-status:"


def search_workflow_status(workflow_id: str, status: str) -> str:
    return f"{SEARCH_WORKFLOW_STATUS}{status}:{workflow_id}"


def workflow(workflow_id: str) -> str:
    """Hash: a stored workflow (``id``, ``version``, ``hash``, ``document``, ``name``, ``webhooks``,
    ``createdAt``, ``updatedAt``; nodedrop_rq/workflows_store.py). No TTL: kept until deleted."""
    return f"{PREFIX}:workflow:{workflow_id}"


def workflows() -> str:
    """Sorted set: ids of the stored workflows, all scored 0, so that they page in id order (ZRANGEBYLEX).
    No TTL; written with the workflow's hash."""
    return f"{PREFIX}:workflows"


def webhook(path: str) -> str:
    """Hash: HTTP method -> id of the stored workflow whose webhook trigger answers that method at
    ``/webhook/<path>``. The index of webhook calls (one HGETALL), written with the workflow's hash on
    every PUT and DELETE. No TTL."""
    return f"{PREFIX}:webhook:{path}"


# rq-scheduler's sorted set of schedules (score = next firing, Unix seconds).
SCHEDULED_JOBS = "rq:scheduler:scheduled_jobs"
