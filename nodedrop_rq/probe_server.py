"""A small HTTP server for the probes and metrics of a process that serves nothing else: the exporter, and
``nodedrop-rq worker`` (``NODEDROP_WORKER_HEALTH_PORT``).

* ``/healthz`` (liveness) answers 200 whenever the process serves HTTP and never asks Redis: restarting
  pods in a Redis outage would not bring Redis back, and for workers would kill the executions they run.
* ``/healthz/readiness`` answers 200 only when Redis answers a PING (bounded by the client's socket
  timeout), else 503 naming the reason.
* ``/metrics``: the caller's Prometheus registry.
"""

from __future__ import annotations

import errno
import json
import threading
from collections.abc import Callable, Iterable
from wsgiref.simple_server import WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler
from redis import Redis
from redis.exceptions import RedisError

from nodedrop_rq.errors import ListenFailed

StartResponse = Callable[..., object]
WsgiApp = Callable[[dict, StartResponse], Iterable[bytes]]


def probe_app(connection: Redis, registry: CollectorRegistry,
              readiness_paths: tuple[str, ...] = ("/healthz/readiness",)) -> WsgiApp:
    """``connection`` must have a socket timeout: it bounds how long a readiness probe can take."""
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return metrics_app(environ, start_response)
        if path == "/healthz":
            return _json(start_response, "200 OK", {"status": "ok"})
        if path in readiness_paths:
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


def bind(host: str, port: int, app: WsgiApp) -> WSGIServer:
    """A threading WSGI server listening on ``host:port``; :class:`ListenFailed` (exit 5) if it cannot."""
    try:
        return make_server(host, port, app, ThreadingWSGIServer, handler_class=_SilentHandler)
    except OSError as exc:
        reason = "the port is already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise ListenFailed(f"cannot listen on {host}:{port}: {reason}") from None


def serve_in_background(server: WSGIServer, name: str) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    return thread
