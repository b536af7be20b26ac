"""Statuses of an execution and the transitions between them: the one table every status write obeys.

Each transition names the statuses it may start from. The Lua scripts in ``scripts.py`` check the
current status (and, for an attempt's outcome, the attempt number and its fencing token) in the same
atomic step as the write, so a writer working from a stale view changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

QUEUED = "queued"
RUNNING = "running"
RETRYING = "retrying"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"

ALL = frozenset({QUEUED, RUNNING, RETRYING, SUCCEEDED, FAILED, CANCELLED})
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
ACTIVE = frozenset({QUEUED, RUNNING, RETRYING})


@dataclass(frozen=True)
class Transition:
    name: str
    sources: frozenset[str]
    targets: frozenset[str]
    # Counter (in the queue's counters hash) that moves when the transition applies, per target.
    counters: tuple[tuple[str, str], ...] = ()
    # Whether the write is fenced on the running attempt's number and token.
    fenced_on_attempt: bool = False

    def counter_for(self, target: str) -> str | None:
        return dict(self.counters).get(target)


def _t(name: str, sources: set[str], targets: set[str], counters: dict[str, str] | None = None,
       fenced: bool = False) -> Transition:
    return Transition(name, frozenset(sources), frozenset(targets), tuple((counters or {}).items()), fenced)


# What may happen to an execution. `succeeded`, `failed` and `cancelled` are left only by an explicit
# requeue (of a failed execution); every attempt outcome is fenced on the attempt that reports it.
SUBMIT = _t("submit", set(), {QUEUED})
START = _t("start", {QUEUED, RETRYING}, {RUNNING})
# RQ's own tools (rq requeue, rq-dashboard, FailedJobRegistry.requeue) put a failed execution's job
# back on the queue without telling us; the worker starts it with a fresh retry schedule.
START_REQUEUED = _t("start-requeued", {FAILED}, {RUNNING})
# The start found no attempt left (the last one was cut off before it began): the execution failed.
START_EXHAUSTED = _t("start-exhausted", {QUEUED, RETRYING}, {FAILED}, {FAILED: "failed"})
# The start found a cancel request: the attempt never begins.
CANCEL_AT_START = _t("cancel-at-start", {QUEUED, RETRYING}, {CANCELLED}, {CANCELLED: "cancelled"})
FINISH = _t("finish", {RUNNING}, {SUCCEEDED, RETRYING, FAILED, CANCELLED},
            {SUCCEEDED: "completed", RETRYING: "retried", FAILED: "failed", CANCELLED: "cancelled"}, fenced=True)
CANCEL_WAITING = _t("cancel", {QUEUED, RETRYING}, {CANCELLED}, {CANCELLED: "cancelled"})
REQUEUE = _t("requeue", {FAILED}, {QUEUED})
# The RQ job was deleted or cancelled with RQ's API or rq-dashboard while the execution waited.
JOB_REMOVED = _t("job-removed", {QUEUED, RETRYING}, {CANCELLED}, {CANCELLED: "cancelled"})

TRANSITIONS: dict[str, Transition] = {t.name: t for t in (
    SUBMIT, START, START_REQUEUED, START_EXHAUSTED, CANCEL_AT_START, FINISH, CANCEL_WAITING, REQUEUE, JOB_REMOVED)}


def allowed(transition: Transition, source: str | None, target: str) -> bool:
    """Whether ``transition`` may move an execution from ``source`` to ``target``."""
    if target not in transition.targets:
        return False
    return source in transition.sources if transition.sources else source is None
