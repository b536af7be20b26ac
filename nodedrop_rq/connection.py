"""Redis connections and the serializer every job uses."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from urllib.parse import unquote, urlsplit, urlunsplit

from redis import Redis
from redis.exceptions import AuthenticationError, RedisError, ResponseError

from nodedrop_rq.errors import RedisRefused
from nodedrop_rq.rq_integration.names import SERIALIZER, SERIALIZER_PATH  # noqa: F401 - re-exported
from nodedrop_rq.settings import Settings


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
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    netloc = f"{user}:***@{host}" if user else f":***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def refusal(exc: BaseException, url: str) -> str | None:
    """Why Redis refused this client, when it answered but will not serve it (credentials, ACL, database
    index): retrying does not help, REDIS_URL must change. None for anything else (e.g. unreachable)."""
    text = _scrub(str(exc), url)
    where = describe_redis_url(url)
    if isinstance(exc, AuthenticationError) or any(code in text for code in ("NOAUTH", "WRONGPASS", "NOPERM")):
        return f"Redis at {where} refused the credentials in REDIS_URL (wrong or missing password or user)"
    if isinstance(exc, ResponseError) and "DB index" in text:
        database = urlsplit(url).path.strip("/") or "0"
        return f"Redis at {where} has no database {database} (the index in REDIS_URL): {text}"
    return None


def describe_redis_error(exc: BaseException, url: str) -> str:
    """One line for a Redis error, without the password."""
    reason = refusal(exc, url)
    if reason is None:
        reason = f"cannot reach Redis at {describe_redis_url(url)}: {type(exc).__name__}: {_scrub(str(exc), url)}"
    return reason


def _scrub(text: str, url: str) -> str:
    password = urlsplit(url).password
    for secret in (password, unquote(password or "")):
        if secret:
            text = text.replace(secret, "***")
    return text


def wait_for_redis(connection: Redis, url: str, log: logging.Logger | None = None, max_delay: float = 30.0,
                   stop: Callable[[], bool] | None = None, refused_is_final: bool = False) -> bool:
    """Block until Redis answers PING, backing off from 0.5 s to ``max_delay``. Logs one line when it
    does not answer and one when it does again (``log=None``: silent). Returns False if ``stop()``.
    ``refused_is_final``: raise :class:`RedisRefused` when Redis refuses the credentials or database
    instead of retrying (only a changed REDIS_URL helps)."""
    delay = 0.5
    reported = False
    while True:
        try:
            connection.ping()
            if reported and log:
                log.info("Redis at %s answers again", describe_redis_url(url))
            return True
        except RedisError as exc:
            if refused_is_final and (final := refusal(exc, url)):
                raise RedisRefused(final) from None
            if log and not reported:
                refused = refusal(exc, url)
                if refused:
                    log.error("%s; retrying with backoff up to %.0f s", refused, max_delay)
                else:
                    log.error("Redis at %s does not answer (%s: %s); retrying with backoff up to %.0f s",
                              describe_redis_url(url), type(exc).__name__, exc, max_delay)
                reported = True
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:  # short naps, so a stop request is honoured promptly
            if stop is not None and stop():
                return False
            time.sleep(0.2)
        delay = min(delay * 2, max_delay)
