"""The exporter's HTTP server: ``/metrics`` (Prometheus text, OpenMetrics when asked), ``/healthz``
(liveness: the process serves HTTP, Redis is not consulted), ``/healthz/readiness`` and ``/health`` (200 only
when Redis answers a PING; ``/health`` is the older name, kept for existing probes)."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry
from redis import Redis

from exporter.collector import BuildInfoCollector, NodedropCollector
from nodedrop_rq.connection import redis_from_settings
from nodedrop_rq.probe_server import WsgiApp, bind, probe_app
from nodedrop_rq.routing import QueueRouter
from nodedrop_rq.settings import Settings

log = logging.getLogger(__name__)


def build_app(connection: Redis, settings: Settings) -> WsgiApp:
    registry = CollectorRegistry(auto_describe=False)
    # Other Redis servers (EXECUTION_QUEUE_REDIS_URLS) get the same bounded timeout as REDIS_URL's client.
    registry.register(NodedropCollector(connection, settings, QueueRouter(settings, socket_timeout=2.0,
                                                                          home_client=connection)))
    registry.register(BuildInfoCollector())
    # Liveness (/healthz) must not depend on Redis: during an outage the exporter is what reports
    # nodedrop_redis_up 0, and restarting it would only hide that.
    return probe_app(connection, registry, readiness_paths=("/health", "/healthz/readiness"))


def serve(settings: Settings, host: str, port: int) -> None:
    # A bounded socket timeout: a scrape during a Redis outage answers `nodedrop_redis_up 0`, not a hang.
    connection = redis_from_settings(settings, socket_timeout=2.0)
    server = bind(host, port, build_app(connection, settings))
    log.info("nodedrop-exporter serving http://%s:%d/metrics", host, server.server_port)
    try:
        server.serve_forever()
    finally:
        server.server_close()
