"""Monotonic per-queue counters kept in Redis by the workers and read by the exporter.

They live in Redis, not in process memory, because RQ runs our success/failure hooks in short-lived
forked horses and in other workers' cleanup: in-memory counters would die with those processes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from redis.client import Pipeline

from nodedrop_rq import keys

# Upper bounds (seconds) of the execution duration histogram. Each observation increments one
# non-cumulative bucket; the exporter turns them into Prometheus' cumulative buckets.
DURATION_BUCKETS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

COMPLETED = "completed"
FAILED = "failed"
RETRIED = "retried"
CANCELLED = "cancelled"
DURATION_COUNT = "duration_count"
DURATION_SUM = "duration_sum"

# Queue wait (enqueue, or a retry's due time, to the attempt's start), observed by the start transition
# in the same hash: wait_sum and one non-cumulative wait_bucket:<le> per observation (no count field: the
# count is the buckets' total, which saves the start one command).
# Finer at the low end than the durations: an idle pool starts an execution within milliseconds, and
# EXECUTION_TARGET_WAIT_SECONDS (5 by default) should fall on a boundary.
WAIT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
                                   600, 1800, 3600)
WAIT_SUM = "wait_sum"
WAIT_BUCKET_PREFIX = "wait_bucket:"
DURATION_BUCKET_PREFIX = "bucket:"


def bucket_field(upper: float, prefix: str = DURATION_BUCKET_PREFIX) -> str:
    return f"{prefix}+Inf" if math.isinf(upper) else f"{prefix}{upper:g}"


def bucket_for(seconds: float) -> str:
    for upper in DURATION_BUCKETS:
        if seconds <= upper:
            return bucket_field(upper)
    return bucket_field(math.inf)


def record_outcome(pipeline: Pipeline, queue: str, outcome: str, duration: float | None) -> None:
    """Add one outcome (and the attempt's duration) to ``queue``'s counters inside ``pipeline``."""
    key = keys.counters(queue)
    pipeline.hincrby(key, outcome, 1)
    if duration is not None and duration >= 0:
        pipeline.hincrby(key, DURATION_COUNT, 1)
        pipeline.hincrbyfloat(key, DURATION_SUM, duration)
        pipeline.hincrby(key, bucket_for(duration), 1)


def cumulative_buckets(raw: Mapping[str, str], bounds: tuple[float, ...] = DURATION_BUCKETS,
                       prefix: str = DURATION_BUCKET_PREFIX) -> list[tuple[str, float]]:
    """Prometheus-style cumulative buckets ``[(le, count), ..., ("+Inf", count)]`` from a counters hash
    (the duration histogram by default; ``WAIT_BUCKETS, WAIT_BUCKET_PREFIX`` for the queue wait)."""
    running = 0.0
    out: list[tuple[str, float]] = []
    for upper in (*bounds, math.inf):
        running += float(raw.get(bucket_field(upper, prefix), 0))
        out.append(("+Inf" if math.isinf(upper) else f"{upper:g}", running))
    return out


def decode(raw: Mapping[bytes | str, bytes | str]) -> dict[str, str]:
    return {_s(k): _s(v) for k, v in raw.items()}


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def outcome_fields() -> Iterable[str]:
    return (COMPLETED, FAILED, RETRIED, CANCELLED)
