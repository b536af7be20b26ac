"""One scrape over several Redis servers (EXECUTION_QUEUE_REDIS_URLS): each server is read as a single
one is (:meth:`NodedropCollector._collect_from_redis`, in parallel), then the families are merged.

* Queue series (``{queue}``) come from the server of their queue: a server that does not answer leaves
  out only its queues' series, and ``nodedrop_redis_up{redis}`` says which server it is.
* ``nodedrop_redis_up``, ``nodedrop_redis_memory_used_bytes``, ``nodedrop_redis_maxmemory_bytes`` and
  ``nodedrop_redis_memory_per_execution_bytes`` get a ``redis`` label: the server's URL without its password.
* Worker gauges (``nodedrop_workers``, ``nodedrop_worker_capacity``, ``nodedrop_worker_pools``) are summed
  over the servers that answered; ``nodedrop_worker_utilization_ratio`` is recomputed from the sums.
* The schedule metrics come from REDIS_URL's server, where the schedules live.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.samples import Sample
from redis.exceptions import RedisError

from nodedrop_rq.routing import RedisServer

if TYPE_CHECKING:
    from exporter.collector import NodedropCollector

log = logging.getLogger("exporter.collector")

UP, MEMORY = "nodedrop_redis_up", "nodedrop_redis_memory_used_bytes"
# Per server, never summed: each Redis has its own memory, limit and bytes per execution.
PER_SERVER = (MEMORY, "nodedrop_redis_maxmemory_bytes", "nodedrop_redis_memory_per_execution_bytes")
UTILIZATION = "nodedrop_worker_utilization_ratio"


def collect_fleet(collector: NodedropCollector) -> Iterator[Metric]:
    started = time.perf_counter()
    servers = collector.router.servers()
    with ThreadPoolExecutor(max_workers=len(servers), thread_name_prefix="scrape") as pool:
        results = list(pool.map(lambda server: _read(collector, server), servers))
    up = GaugeMetricFamily(UP, "1 when the last scrape could read this Redis, else 0.", labels=["redis"])
    families: dict[str, Metric] = {}
    for server, metrics in results:
        up.add_metric([server.where], 0 if metrics is None else 1)
        for metric in metrics or []:
            if metric.name in PER_SERVER:
                metric.samples = [s._replace(labels={**s.labels, "redis": server.where}) for s in metric.samples]
            _merge(families, metric)
    _recompute_utilization(families)
    yield up
    yield from families.values()
    took = GaugeMetricFamily("nodedrop_exporter_scrape_duration_seconds",
                             "Time this scrape spent reading Redis and building metrics.")
    took.add_metric([], time.perf_counter() - started)
    yield took


def _read(collector: NodedropCollector, server: RedisServer) -> tuple[RedisServer, list[Metric] | None]:
    try:
        metrics = list(collector._collect_from_redis(server))
    except RedisError as exc:
        if server.url not in collector.server_errors:  # one line per outage of each server
            log.warning("cannot read Redis at %s (its queues' series are left out until it answers): %s: %s",
                        server.where, type(exc).__name__, exc)
        collector.server_errors[server.url] = f"{type(exc).__name__}: {exc}"
        return server, None
    if collector.server_errors.pop(server.url, None) is not None:
        log.info("Redis at %s answers again", server.where)
    return server, metrics


def _merge(families: dict[str, Metric], metric: Metric) -> None:
    """Add ``metric``'s samples to the family of its name; a sample with the same name and labels as one
    already there (the unlabelled worker gauges) is added to it."""
    family = families.get(metric.name)
    if family is None:
        families[metric.name] = metric
        return
    index = {(s.name, tuple(sorted(s.labels.items()))): i for i, s in enumerate(family.samples)}
    for sample in metric.samples:
        at = index.get((sample.name, tuple(sorted(sample.labels.items()))))
        if at is None:
            family.samples.append(sample)
        else:
            family.samples[at] = family.samples[at]._replace(value=family.samples[at].value + sample.value)


def _recompute_utilization(families: dict[str, Metric]) -> None:
    if UTILIZATION not in families:
        return
    active = sum(s.value for s in families["nodedrop_queue_active"].samples) if "nodedrop_queue_active" in families \
        else 0.0
    capacity = sum(s.value for s in families["nodedrop_worker_capacity"].samples) \
        if "nodedrop_worker_capacity" in families else 0.0
    families[UTILIZATION].samples = [Sample(UTILIZATION, {}, min(active / capacity, 1.0) if capacity else 0.0)]
