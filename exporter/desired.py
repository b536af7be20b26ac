"""How many worker containers keep the queue wait under EXECUTION_TARGET_WAIT_SECONDS (pure, no Redis).

``nodedrop_workers_desired`` (README, "Desired workers"):

    busy     = max(λ · S, active)          Little's law: executions in service at arrival rate λ (per s)
                                           and mean duration S; never fewer than run now
    backlog  = waiting · S / T             worker processes that drain what waits within the target T
    desired  = ceil((busy + backlog) / EXECUTION_WORKER_CONCURRENCY)

λ counts executions that entered the queue over the exporter's window: attempts that started (the wait
histogram's count) plus the growth of the queue, so a queue that no worker serves still shows its
arrivals. Until any attempt has ended, S is unknown and the value is the depth rule,
``ceil((waiting + active) / concurrency)``, never a guess.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

# Over this many seconds of scrapes the arrival rate and the recent mean duration are taken: long enough
# to smooth a burst over several scrape intervals (15 s in deploy/prometheus), short enough to follow load.
RATE_WINDOW_SECONDS = 60.0
# Two scrapes closer than this give no usable rate (a second Prometheus, a test, a curl).
MIN_RATE_INTERVAL_SECONDS = 1.0
# Floating-point slack, so that 10 processes at concurrency 5 are 2 containers, not 3.
_EPSILON = 1e-9


def desired_workers(*, waiting: int, active: int, arrival_rate: float | None, mean_duration: float | None,
                    target_wait: float, concurrency: int) -> int:
    """Worker containers so that the expected queue wait stays under ``target_wait`` seconds.

    ``arrival_rate`` (executions/s) is None when no rate is known yet (the exporter's first scrape);
    ``mean_duration`` (seconds per attempt) is None before any attempt ended."""
    if target_wait <= 0 or concurrency < 1:
        raise ValueError("target_wait must be > 0 and concurrency >= 1")
    if mean_duration is None:
        processes = float(waiting + active)
    else:
        busy = max((arrival_rate or 0.0) * mean_duration, float(active))
        processes = busy + waiting * mean_duration / target_wait
    desired = max(math.ceil(processes / concurrency - _EPSILON), 0)
    # At least one container while there is work, however short the executions.
    return max(desired, 1) if waiting + active > 0 else desired


@dataclass(frozen=True)
class Sample:
    at: float             # monotonic seconds
    starts: float         # attempts started so far (wait histogram count)
    waiting: int
    ended: float          # attempts ended so far (duration histogram count)
    duration_sum: float


@dataclass(frozen=True)
class Rates:
    arrival_rate: float | None
    mean_duration: float | None


class RateWindow:
    """Per-queue samples of the monotonic counters, one per scrape, kept for ``window`` seconds.

    Each exporter replica keeps its own; they read the same Redis, so their values agree up to the
    moments they sampled (autoscalers take ``max`` across replicas)."""

    def __init__(self, window: float = RATE_WINDOW_SECONDS, clock: object = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._samples: dict[str, deque[Sample]] = {}
        self._lock = threading.Lock()  # the exporter's HTTP server answers scrapes in threads

    def observe(self, queue: str, *, starts: float, waiting: int, ended: float, duration_sum: float) -> Rates:
        now = self.clock()  # type: ignore[operator]
        sample = Sample(now, starts, waiting, ended, duration_sum)
        with self._lock:
            history = self._samples.setdefault(queue, deque())
            # Keep the newest sample older than the window too: the rate then always spans a full window.
            while len(history) >= 2 and history[1].at <= now - self.window:
                history.popleft()
            oldest = history[0] if history else None
            history.append(sample)
        return rates(oldest, sample)

    def forget_except(self, queues: set[str]) -> None:
        with self._lock:
            for queue in set(self._samples) - queues:
                del self._samples[queue]


def rates(oldest: Sample | None, newest: Sample) -> Rates:
    """λ and S between two samples; S falls back to the all-time mean when no attempt ended in between.
    A counter that went down (Redis flushed or replaced) gives no rate rather than a negative one."""
    lifetime = newest.duration_sum / newest.ended if newest.ended > 0 else None
    if oldest is None or newest.at - oldest.at < MIN_RATE_INTERVAL_SECONDS or newest.starts < oldest.starts \
            or newest.ended < oldest.ended:
        return Rates(None, lifetime)
    elapsed = newest.at - oldest.at
    arrivals = (newest.starts - oldest.starts) + (newest.waiting - oldest.waiting)
    ended = newest.ended - oldest.ended
    mean = (newest.duration_sum - oldest.duration_sum) / ended if ended > 0 else lifetime
    return Rates(max(arrivals, 0.0) / elapsed, mean if mean is None else max(mean, 0.0))
