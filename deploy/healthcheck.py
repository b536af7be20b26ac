#!/opt/venv/bin/python
"""Container health check for the nodedrop-rq image (the Dockerfile's HEALTHCHECK; compose and the
Kubernetes probes pick the mode per service).

    nodedrop-healthcheck [api]    GET the API's /api/health (200 = healthy; 503 when Redis is unreachable)
    nodedrop-healthcheck exporter GET the exporter's /health (200 = it can read Redis)
    nodedrop-healthcheck worker-http
                                  GET the worker pool's /healthz/readiness on NODEDROP_WORKER_HEALTH_PORT
                                  (the pool serves, and Redis answers)
    nodedrop-healthcheck worker   this host runs at least one ExecutionWorker with a fresh heartbeat in Redis
    nodedrop-healthcheck worker-liveness
                                  the same, but healthy while Redis cannot be reached: for a liveness probe,
                                  which must not restart every worker in a Redis outage (they reconnect by
                                  themselves, and a restart would kill the executions they still run)

Exit 0 when healthy, 1 otherwise, with one line saying why (Docker keeps it in `docker inspect`).
A second argument overrides the URL of the api, exporter and worker-http modes: ``nodedrop-healthcheck api URL``.
"""

from __future__ import annotations

import socket
import sys
import urllib.error
import urllib.request
from datetime import datetime, timezone

from nodedrop_rq.settings import Settings, SettingsError

TIMEOUT = 4.0


def check_http(url: str) -> tuple[bool, str]:
    if not url.startswith(("http://", "https://")):
        return False, f"not an http(s) URL: {url}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:  # noqa: S310 - scheme checked above
            return response.status == 200, f"{url}: HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url}: HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{url}: {exc}"


def check_worker(settings: Settings, hostname: str, unreachable_ok: bool = False) -> tuple[bool, str]:
    """At least one worker registered from ``hostname`` (the container) heartbeated recently: the same
    freshness rule the exporter uses for ``nodedrop_workers``. With ``unreachable_ok``, a Redis that does not
    answer proves nothing about this container's workers, so it counts as healthy."""
    from redis.exceptions import RedisError
    from rq.worker_registration import REDIS_WORKER_KEYS

    from nodedrop_rq.connection import describe_redis_url, redis_from_settings

    max_age = settings.worker_heartbeat_max_age
    now = datetime.now(timezone.utc)
    try:
        connection = redis_from_settings(settings, socket_timeout=TIMEOUT)
        worker_keys = sorted(connection.smembers(REDIS_WORKER_KEYS))
        with connection.pipeline(transaction=False) as pipe:
            for key in worker_keys:
                pipe.hmget(key, "hostname", "last_heartbeat", "death")
            rows = pipe.execute()
    except RedisError as exc:
        where = f"cannot read {describe_redis_url(settings.redis_url)}: {type(exc).__name__}: {exc}"
        return (True, f"{where} (cannot judge the workers; they reconnect by themselves)") if unreachable_ok \
            else (False, where)
    live = 0
    for host, heartbeat, death in rows:
        if death is not None or host is None or heartbeat is None or host.decode() != hostname:
            continue
        if _age(heartbeat.decode(), now) <= max_age:
            live += 1
    if live:
        return True, f"{live} live worker(s) on {hostname}"
    return False, f"no worker on {hostname} heartbeated in the last {max_age} s"


def _age(stamp: str, now: datetime) -> float:
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return float("inf")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (now - moment).total_seconds()


def main(argv: list[str]) -> int:
    mode = argv[0] if argv else "api"
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"unhealthy: {exc}")
        return 1
    override = argv[1] if len(argv) > 1 else None
    if mode == "api":
        ok, why = check_http(override or f"http://127.0.0.1:{settings.api_port}/api/health")
    elif mode == "exporter":
        ok, why = check_http(override or f"http://127.0.0.1:{settings.exporter_port}/health")
    elif mode == "worker-http":
        if not (override or settings.worker_health_port):
            print("unhealthy: NODEDROP_WORKER_HEALTH_PORT is not set, so the pool serves no health port")
            return 1
        ok, why = check_http(override or f"http://127.0.0.1:{settings.worker_health_port}/healthz/readiness")
    elif mode in ("worker", "worker-liveness"):
        from nodedrop_rq.routing import worker_settings

        # The workers register on the Redis of their queue: EXECUTION_QUEUE's (EXECUTION_QUEUE_REDIS_URLS).
        try:
            settings = worker_settings(settings, [settings.queue])[0]
        except SettingsError as exc:
            print(f"unhealthy: {exc}")
            return 1
        ok, why = check_worker(settings, socket.gethostname(), unreachable_ok=mode == "worker-liveness")
    else:
        print(f"usage: nodedrop-healthcheck [api|exporter|worker-http|worker|worker-liveness] [URL] (got {mode!r})")
        return 2
    print(("healthy: " if ok else "unhealthy: ") + why)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
