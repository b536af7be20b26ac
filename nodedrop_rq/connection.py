"""Redis connections and the serializer every job uses."""

from __future__ import annotations

from redis import Redis
from rq.serializers import JSONSerializer

from nodedrop_rq.settings import Settings

# One serializer for every reader and writer (workers, API, exporter, rq-dashboard --json, other
# languages): jobs never hold pickle.
SERIALIZER = JSONSerializer
SERIALIZER_PATH = "rq.serializers.JSONSerializer"


def redis_from_settings(settings: Settings, socket_timeout: float | None = None) -> Redis:
    """A client for ``settings.redis_url``; ``socket_timeout`` bounds each command (None: RQ's blocking
    dequeue needs no read timeout)."""
    return Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=2.0,
        socket_timeout=socket_timeout,
        health_check_interval=30,
    )


def describe_redis_url(url: str) -> str:
    """The URL with any password replaced, for logs and error messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    netloc = f"{user}:***@{host}" if user else f":***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
