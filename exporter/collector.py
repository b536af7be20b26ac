"""The Prometheus collector: everything is read from Redis on each scrape, in two pipelined round
trips whatever the number of queues, workers or jobs. It never runs RQ's registry cleanup or job
callbacks (counting must not change what it counts)."""

from __future__ import annotations

import logging
import math
import platform
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib import metadata

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError

from exporter.desired import RateWindow, desired_workers
from nodedrop_rq import counters, keys
from nodedrop_rq.routing import QueueRouter, RedisServer
from nodedrop_rq.rq_integration import names
from nodedrop_rq.settings import Settings
from nodedrop_rq.stats import add_count_commands
from nodedrop_rq.worker import POOL_FIELD

log = logging.getLogger(__name__)

# The head of an RQ queue list is its oldest waiting job; returns that job's enqueued_at (or nil).
_OLDEST_ENQUEUED_AT = """
local id = redis.call('LINDEX', KEYS[1], 0)
if not id then return false end
return redis.call('HGET', ARGV[1] .. id, 'enqueued_at')
"""


class BuildInfoCollector(Collector):
    """``nodedrop_build_info{version, rq_version, python_version} 1``: which build answers, so a dashboard
    can show a rolling upgrade and a query can join on it. Independent of Redis."""

    def __init__(self) -> None:
        self.labels = [_distribution_version("nodedrop-rq"), _distribution_version("rq"), platform.python_version()]

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("nodedrop_build_info", "Versions of nodedrop-rq, rq and Python of this exporter.",
                                 labels=["version", "rq_version", "python_version"])
        info.add_metric(self.labels, 1)
        yield info


def _distribution_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


class NodedropCollector(Collector):
    def __init__(self, connection: Redis, settings: Settings, router: QueueRouter | None = None) -> None:
        self.connection = connection
        self.settings = settings
        self._oldest = connection.register_script(_OLDEST_ENQUEUED_AT)
        self.last_error: str | None = None
        self.rates = RateWindow()
        # Queues on several Redis servers (EXECUTION_QUEUE_REDIS_URLS): exporter/fleet.py reads each.
        self.router = router or QueueRouter(settings, home_client=connection)
        self.server_errors: dict[str, str] = {}

    def collect(self) -> Iterator[Metric]:
        if self.router.multi:
            from exporter.fleet import collect_fleet

            yield from collect_fleet(self)
            return
        started = time.perf_counter()
        up = GaugeMetricFamily("nodedrop_redis_up", "1 when the last scrape could read Redis, else 0.")
        try:
            metrics = list(self._collect_from_redis())
            up.add_metric([], 1)
            if self.last_error is not None:
                log.info("Redis answers again")
            self.last_error = None
        except RedisError as exc:
            # No stale numbers: when Redis cannot be read, the queue series are simply absent.
            metrics = []
            up.add_metric([], 0)
            if self.last_error is None:  # one line per outage, not one per scrape
                log.warning("cannot read Redis (nodedrop_redis_up=0 until it answers): %s: %s",
                            type(exc).__name__, exc)
            self.last_error = f"{type(exc).__name__}: {exc}"
        yield up
        yield from metrics
        took = GaugeMetricFamily("nodedrop_exporter_scrape_duration_seconds",
                                 "Time this scrape spent reading Redis and building metrics.")
        took.add_metric([], time.perf_counter() - started)
        yield took

    def _collect_from_redis(self, server: RedisServer | None = None) -> Iterator[Metric]:
        """Everything one Redis holds: REDIS_URL's, or ``server``'s (its queues; schedules if it is home)."""
        connection = server.client if server is not None else self.connection
        with connection.pipeline(transaction=False) as pipe:
            pipe.smembers(keys.queues())
            pipe.smembers(names.WORKERS)
            pipe.info("memory")
            pipe.zcard(keys.SCHEDULED_JOBS)
            pipe.zrange(keys.SCHEDULED_JOBS, 0, 0, withscores=True)
            queue_members, worker_keys, memory, schedules, earliest = pipe.execute()
        queues = sorted({_s(q) for q in queue_members} | {self.settings.queue}) if server is None else \
            self.router.queues_on(server, queue_members)
        if server is None:  # several servers: each scrape sees one server's queues, which must not forget the rest
            self.rates.forget_except(set(queues))
        worker_keys = sorted(_s(k) for k in worker_keys)

        with connection.pipeline(transaction=False) as pipe:
            for queue in queues:
                add_count_commands(pipe, queue)
                self._oldest(keys=[names.queue(queue)], args=[names.JOB_KEY_PREFIX], client=pipe)
                pipe.hgetall(keys.counters(queue))
                pipe.zcard(keys.active(queue))
            for key in worker_keys:
                pipe.hmget(key, "state", "last_heartbeat", POOL_FIELD)
            values = pipe.execute()

        per_queue = 8
        now = datetime.now(timezone.utc)
        gauges = {name: GaugeMetricFamily(f"nodedrop_queue_{name}", help_text, labels=["queue"])
                  for name, help_text in _QUEUE_GAUGES}
        oldest = GaugeMetricFamily("nodedrop_queue_oldest_waiting_age_seconds",
                                   "Age of the oldest waiting execution (0 when none waits).", labels=["queue"])
        desired = GaugeMetricFamily(
            "nodedrop_workers_desired",
            "Worker containers that keep the queue wait under EXECUTION_TARGET_WAIT_SECONDS: "
            "ceil((max(arrival rate * mean duration, active) + waiting * mean duration / target) "
            "/ EXECUTION_WORKER_CONCURRENCY).",
            labels=["queue"])
        by_depth = GaugeMetricFamily(
            "nodedrop_workers_desired_by_depth",
            "Worker containers to run everything that waits or runs now: "
            "ceil((waiting + active) / EXECUTION_WORKER_CONCURRENCY).",
            labels=["queue"])
        totals = {field: CounterMetricFamily(f"nodedrop_executions_{field}", help_text, labels=["queue"])
                  for field, help_text in _COUNTERS}
        duration = HistogramMetricFamily("nodedrop_execution_duration_seconds",
                                         "Run time of execution attempts that ended (succeeded or failed).",
                                         labels=["queue"])
        wait = HistogramMetricFamily("nodedrop_queue_wait_seconds",
                                     "Seconds from an execution's enqueue (a retry: its due time) to its "
                                     "attempt's start.", labels=["queue"])
        retained = GaugeMetricFamily(
            "nodedrop_executions_retained",
            "Executions whose state Redis keeps: unfinished ones, and those that succeeded or failed and are "
            "still kept (EXECUTION_COMPLETION_TTL, EXECUTION_FAILURE_TTL).", labels=["queue"])
        active_total = retained_total = 0
        for index, queue in enumerate(queues):
            waiting, active, completed, failed, scheduled, oldest_at, raw_counters, unfinished = \
                values[index * per_queue:(index + 1) * per_queue]
            kept = int(unfinished) + int(completed) + int(failed)
            retained.add_metric([queue], kept)
            retained_total += kept
            for name, value in (("waiting", waiting), ("active", active), ("completed", completed),
                                ("failed", failed), ("scheduled", scheduled)):
                gauges[name].add_metric([queue], int(value))
            oldest.add_metric([queue], _age(oldest_at, now))
            concurrency = self.settings.worker_concurrency
            by_depth.add_metric([queue], math.ceil((int(waiting) + int(active)) / concurrency))
            active_total += int(active)
            raw = counters.decode(raw_counters)
            wait_buckets = counters.cumulative_buckets(raw, counters.WAIT_BUCKETS, counters.WAIT_BUCKET_PREFIX)
            rates = self.rates.observe(queue, starts=wait_buckets[-1][1], waiting=int(waiting),
                                       ended=float(raw.get(counters.DURATION_COUNT, 0)),
                                       duration_sum=float(raw.get(counters.DURATION_SUM, 0)))
            desired.add_metric([queue], desired_workers(
                waiting=int(waiting), active=int(active), arrival_rate=rates.arrival_rate,
                mean_duration=rates.mean_duration, target_wait=self.settings.target_wait_seconds,
                concurrency=concurrency))
            wait.add_metric([queue], wait_buckets, sum_value=float(raw.get(counters.WAIT_SUM, 0)))
            for field, _ in _COUNTERS:
                totals[field].add_metric([queue], float(raw.get(field, 0)))
            duration.add_metric([queue], counters.cumulative_buckets(raw),
                                sum_value=float(raw.get(counters.DURATION_SUM, 0)))

        yield from gauges.values()
        yield oldest
        yield from totals.values()
        yield duration
        yield wait
        yield desired
        yield by_depth
        yield retained
        target = GaugeMetricFamily("nodedrop_queue_wait_target_seconds",
                                   "EXECUTION_TARGET_WAIT_SECONDS: the queue wait nodedrop_workers_desired aims at.")
        target.add_metric([], self.settings.target_wait_seconds)
        yield target
        yield from self._worker_metrics(values[len(queues) * per_queue:], now, active_total)
        if server is None or server.home:
            yield from _schedule_metrics(schedules, earliest, now)
        used_bytes = float(memory.get("used_memory", 0))
        used = GaugeMetricFamily("nodedrop_redis_memory_used_bytes", "Redis used_memory.")
        used.add_metric([], used_bytes)
        yield used
        limit = GaugeMetricFamily("nodedrop_redis_maxmemory_bytes", "Redis maxmemory (0: no limit).")
        limit.add_metric([], float(memory.get("maxmemory", 0)))
        yield limit
        # The memory budget: retained executions x this = what Redis needs (README, Capacity).
        per_execution = GaugeMetricFamily(
            "nodedrop_redis_memory_per_execution_bytes",
            "Redis used_memory divided by the executions it retains, all queues (0 when none); includes "
            "Redis's own fixed overhead, so it is an upper bound with few executions.")
        per_execution.add_metric([], used_bytes / retained_total if retained_total else 0.0)
        yield per_execution

    def _worker_metrics(self, rows: list[list[bytes | None]], now: datetime, active: int) -> Iterator[Metric]:
        # A worker hash outlives a dead worker by worker_ttl + 60 s; only a recent heartbeat counts.
        max_age = self.settings.worker_heartbeat_max_age
        states = {"idle": 0, "busy": 0}
        pools: set[str] = set()
        for state, heartbeat, pool in rows:
            if state is None or heartbeat is None or _age(heartbeat, now) > max_age:
                continue
            name = _s(state)
            states["busy" if name == "busy" else "idle"] += 1
            if pool is not None:
                pools.add(_s(pool))
        workers = GaugeMetricFamily("nodedrop_workers", "Live worker processes by state.", labels=["state"])
        for name, count in states.items():
            workers.add_metric([name], count)
        capacity_value = sum(states.values())
        capacity = GaugeMetricFamily("nodedrop_worker_capacity",
                                     "Concurrent executions the live workers can run (one per process).")
        capacity.add_metric([], capacity_value)
        utilization = GaugeMetricFamily("nodedrop_worker_utilization_ratio",
                                        "Active executions / capacity (0 when there is no capacity).")
        utilization.add_metric([], min(active / capacity_value, 1.0) if capacity_value else 0.0)
        live_pools = GaugeMetricFamily(
            "nodedrop_worker_pools",
            "Live nodedrop-rq worker pools (containers), to compare with nodedrop_workers_desired.")
        live_pools.add_metric([], len(pools))
        yield workers
        yield capacity
        yield utilization
        yield live_pools


def _schedule_metrics(count: int, earliest: list[tuple[bytes, float]], now: datetime) -> Iterator[Metric]:
    total = GaugeMetricFamily("nodedrop_schedules", "Schedules stored (cron, one-off and interval).")
    total.add_metric([], count)
    # Schedule ids are unbounded, so one lag gauge instead of a series per schedule.
    lag = GaugeMetricFamily("nodedrop_schedule_lag_seconds",
                            "Now minus the oldest overdue firing (0 when none is overdue): a scheduler is missing "
                            "or stuck when this grows.")
    lag.add_metric([], max(0.0, now.timestamp() - earliest[0][1]) if earliest else 0.0)
    yield total
    yield lag


_QUEUE_GAUGES = (
    ("waiting", "Executions waiting in the queue."),
    ("active", "Executions running now."),
    ("completed", "Succeeded executions still kept (EXECUTION_COMPLETION_TTL)."),
    ("failed", "Executions in the failed registry, waiting for manual review."),
    ("scheduled", "Executions waiting for their next retry."),
)
_COUNTERS = (
    ("completed", "Executions that succeeded."),
    ("failed", "Executions that failed for good (retries used up)."),
    ("retried", "Failed attempts that were scheduled for a retry."),
    ("cancelled", "Executions cancelled on request."),
)


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _age(stamp: bytes | str | None, now: datetime) -> float:
    if not stamp:
        return 0.0
    text = _s(stamp)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (now - moment).total_seconds())
