"""The exporter's HTTP server: ``/metrics`` (Prometheus text, OpenMetrics when asked), ``/healthz``
(liveness: the process serves HTTP, Redis is not consulted), ``/healthz/readiness`` and ``/health`` (200 only
when Redis answers a PING; ``/health`` is the older name, kept for existing probes)."""

from __future__ import annotations

import errno
import json
import logging
from collections.abc import Callable, Iterable
from wsgiref.simple_server import make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler
from redis import Redis
from redis.exceptions import RedisError

from exporter.collector import BuildInfoCollector, NodedropCollector
from nodedrop_rq.connection import redis_from_settings
from nodedrop_rq.errors import ListenFailed
from nodedrop_rq.routing import QueueRouter
from nodedrop_rq.settings import Settings

log = logging.getLogger(__name__)

StartResponse = Callable[..., object]


def build_app(connection: Redis, settings: Settings) -> Callable[[dict, StartResponse], Iterable[bytes]]:
    registry = CollectorRegistry(auto_describe=False)
    # Other Redis servers (EXECUTION_QUEUE_REDIS_URLS) get the same bounded timeout as REDIS_URL's client.
    registry.register(NodedropCollector(connection, settings, QueueRouter(settings, socket_timeout=2.0,
                                                                          home_client=connection)))
    registry.register(BuildInfoCollector())
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return metrics_app(environ, start_response)
        if path == "/healthz":
            # Liveness must not depend on Redis: during an outage the exporter is what reports
            # nodedrop_redis_up 0, and restarting it would only hide that.
            return _json(start_response, "200 OK", {"status": "ok"})
        if path in ("/health", "/healthz/readiness"):
            try:
                connection.ping()
                body, status = {"status": "healthy", "redis": "up"}, "200 OK"
            except RedisError as exc:
                body = {"status": "unhealthy", "redis": "down", "reason": f"{type(exc).__name__}: {exc}"}
                status = "503 Service Unavailable"
            return _json(start_response, status, body)
        return _json(start_response, "404 Not Found",
                     {"error": f"no route {path}; try /metrics, /healthz or /healthz/readiness"})

    return app


def _json(start_response: StartResponse, status: str, body: dict) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def serve(settings: Settings, host: str, port: int) -> None:
    # A bounded socket timeout: a scrape during a Redis outage answers `nodedrop_redis_up 0`, not a hang.
    connection = redis_from_settings(settings, socket_timeout=2.0)
    try:
        server = make_server(host, port, build_app(connection, settings), ThreadingWSGIServer,
                             handler_class=_SilentHandler)
    except OSError as exc:
        reason = "the port is already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise ListenFailed(f"cannot listen on {host}:{port}: {reason}") from None
    log.info("nodedrop-exporter serving http://%s:%d/metrics", host, server.server_port)
    try:
        server.serve_forever()
    finally:
        server.server_close()
