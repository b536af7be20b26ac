"""``ExecutionJob``: RQ's Job, with the outcome kept in the execution's state instead of RQ's results stream.

RQ 3 records every job's outcome as a ``Result`` in a stream, ``rq:results:<id>``. A stream costs at
least 4.7 KB however small its entry (Redis allocates its first node whole), more than everything else
an execution leaves in Redis together; and the execution's state already holds what that Result would:
status, output or error, times and worker. So this class writes what RQ's own success and failure
handling writes, without the Result:

* success: the job's status and fields, and RQ's finished registry for the job's ``result_ttl``;
* failure: RQ's failed registry for ``failure_ttl`` (``rq requeue``, rq-dashboard, ``FailedJobRegistry``
  and ``nodedrop-rq failed`` all read it), and the exception in the job's own ``exc_info`` field (which
  RQ reads back as ``job.exc_info`` when there is no Result), except for a node failure: that one is the
  execution's ``error``, and of its traceback, which only shows RQ's frames calling ``run_execution``,
  the execution's state keeps where it was raised (``excString``).

Empty fields RQ writes (``group_id``, callbacks that are not set) are left out, and so are, once the
execution succeeded, the fields that only running the job again would read (timeout, retries, the failure
callback): RQ reads an absent field as its default, and a hash of few short fields
stays in Redis's compact encoding.
``ExecutionWorker`` uses this class for the jobs it takes; RQ's tools read the same hash as a plain Job.
"""

from __future__ import annotations

import re
import weakref
import zlib
from typing import Any, TypeVar

from redis.client import Pipeline
from rq.defaults import CALLBACK_TIMEOUT
from rq.job import Job, JobStatus
from rq.registry import BaseRegistry, FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry

from nodedrop_rq import keys
from nodedrop_rq.execution import scripts

# The last line of a node failure's traceback (nodedrop_rq.errors.ExecutionFailed).
_NODE_FAILURE = "ExecutionFailed:"
_Registry = TypeVar("_Registry", bound=BaseRegistry)
_registries: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], BaseRegistry]] = weakref.WeakKeyDictionary()

# What run_execution returns as `status` only when its success transition applied: the execution ended,
# and no requeue leaves `succeeded`.
_ENDED = ("succeeded",)
# Fields of RQ's job hash that only running it again would read.
_HOW_TO_RUN = ("timeout", "failure_ttl", "retries_left", "retry_intervals", "number_of_retries",
               "failure_callback_name", "failure_callback_timeout", "last_heartbeat")


class ExecutionJob(Job):
    # RQ builds a registry object on every use of these, resolving its serializer each time (a
    # typing.Protocol isinstance check of about 9 µs, five times per execution). A registry holds nothing
    # but its name, connection and classes, so one per (connection, kind, queue) serves every job.
    @property
    def started_job_registry(self) -> StartedJobRegistry:
        return self._registry(StartedJobRegistry)

    @property
    def failed_job_registry(self) -> FailedJobRegistry:
        return self._registry(FailedJobRegistry)

    @property
    def finished_job_registry(self) -> FinishedJobRegistry:
        return self._registry(FinishedJobRegistry)

    def _registry(self, kind: type[_Registry]) -> _Registry:
        known = _registries.setdefault(self.connection, {})
        key = (kind, self.origin, type(self), self.serializer)
        registry = known.get(key)
        if registry is None:
            registry = known[key] = kind(self.origin, connection=self.connection, job_class=type(self),
                                         serializer=self.serializer)
        return registry  # type: ignore[return-value]

    def _handle_success(self, result_ttl: int, pipeline: Pipeline, worker_name: str = "",
                        execution_id: str | None = None, execution_started_at: Any = None,
                        execution_ended_at: Any = None) -> None:
        self._status = JobStatus.FINISHED
        empty = self._save_short(pipeline, delete_empty=False)
        outcome = self._result.get("status") if isinstance(self._result, dict) else None
        # An execution that succeeded never runs again: its job keeps what RQ's tools show (status, times,
        # origin, description, worker), not how to run it.
        pipeline.hdel(self.key, "exc_info", *empty, *(_HOW_TO_RUN if outcome in _ENDED else ()))
        if result_ttl != 0:
            self.finished_job_registry.add(self, result_ttl, pipeline)

    def _handle_failure(self, exc_string: str, pipeline: Pipeline, worker_name: str = "",
                        execution_id: str | None = None, execution_started_at: Any = None,
                        execution_ended_at: Any = None) -> None:
        self.failed_job_registry.add(self, ttl=self.failure_ttl, pipeline=pipeline)
        lines = exc_string.strip().splitlines()
        if lines and lines[-1].split(".")[-1].startswith(_NODE_FAILURE):
            pipeline.eval(scripts.PUT_FIELD, 1, keys.execution(self.id), "excString", innermost_frame(lines))
        elif lines:
            pipeline.hset(self.key, "exc_info", zlib.compress(exc_string.encode()))
        # The next start writes a new heartbeat; until then there is none to read.
        pipeline.hdel(self.key, "last_heartbeat", *self._empty_fields(), *self._default_fields())

    def _save_short(self, pipeline: Pipeline, delete_empty: bool = True) -> list[str]:
        """``Job.save`` without the meta and result, and without empty fields (deleted here, or by the
        caller when not ``delete_empty``); returns the names of those."""
        mapping = self.to_dict(include_meta=False, include_result=False)
        empty = [name for name, value in mapping.items() if value == ""] + self._default_fields()
        pipeline.hset(self.key, mapping={name: value for name, value in mapping.items() if value != ""})
        if empty and delete_empty:
            pipeline.hdel(self.key, *empty)
        return empty

    def _default_fields(self) -> list[str]:
        """Fields that hold what RQ reads when they are absent."""
        return ["failure_callback_timeout"] if self.failure_callback_timeout == CALLBACK_TIMEOUT else []

    def _empty_fields(self) -> list[str]:
        return [name for name, value in self.to_dict(include_meta=False, include_result=False).items()
                if value == ""]


def innermost_frame(lines: list[str]) -> str:
    """Of a node failure's formatted traceback, the location of its innermost frame (its file named from
    the package directory on): :func:`nodedrop_rq.state.traceback_text` puts the header and the exception
    line (ExecutionFailed's text for the execution's error) back around it."""
    frames = [index for index, line in enumerate(lines) if line.startswith('  File "')]
    if not frames or not lines[0].startswith("Traceback"):
        return "\n".join(lines)
    # The file as from the directory the package is installed in (the same on every machine).
    return re.sub(r'^  File ".*?/(nodedrop_rq/[^"]*)"', r'  File "\1"', lines[frames[-1]])
