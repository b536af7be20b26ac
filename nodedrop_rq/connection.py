"""Redis connections and the serializer every job uses."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from redis import Redis, SSLConnection
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.sentinel import Sentinel, SentinelManagedConnection

from nodedrop_rq.errors import RedisRefused
from nodedrop_rq.rq_integration.names import SERIALIZER, SERIALIZER_PATH  # noqa: F401 - re-exported
from nodedrop_rq.settings import SentinelTarget, Settings

if TYPE_CHECKING:
    from redis.asyncio import Redis as AsyncRedis

# Each question to a sentinel (where is the master?) is one small reply: a sentinel that does not answer
# within this is skipped for the next one, instead of hanging the client during the very failover.
SENTINEL_SOCKET_TIMEOUT = 1.0


class _SentinelConnection(SentinelManagedConnection):
    """redis-py's Sentinel connection, but closed when a read is interrupted, as a plain Connection is.

    redis-py's class defaults ``disconnect_on_error`` to False: a read cut short (RQ's warm shutdown raises
    StopRequested inside the worker's blocking dequeue) returns the connection to the pool with the reply
    still unread, and the next command on it (the worker's last pipeline) reads that stale reply."""

    def read_response(self, disable_decoding: bool = False, *, disconnect_on_error: bool | None = True,
                      **kwargs: Any) -> Any:
        return super().read_response(disable_decoding, disconnect_on_error=disconnect_on_error, **kwargs)


class _SentinelSSLConnection(_SentinelConnection, SSLConnection):
    pass


def redis_from_settings(settings: Settings, socket_timeout: float | None = None,
                        socket_connect_timeout: float = 2.0) -> Redis:
    """A client for ``settings.redis_url``; ``socket_timeout`` bounds each command (None: RQ's blocking
    dequeue needs no read timeout). Every component gets its client here, so a Sentinel URL gives each of
    them a client that asks the sentinels for the current master on every reconnect."""
    target = settings.redis_sentinel
    if target is not None:
        return _sentinel_master(target, socket_timeout, socket_connect_timeout)
    return Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=socket_connect_timeout,
        socket_timeout=socket_timeout,
        health_check_interval=30,
    )


def _sentinel_tls(target: SentinelTarget) -> dict[str, Any]:
    """TLS options of the sentinels and the master alike (``rediss+sentinel://``)."""
    if not target.tls:
        return {}
    return {"ssl": True, "ssl_ca_certs": target.ssl_ca_certs, "ssl_cert_reqs": target.ssl_cert_reqs or "required"}


def _sentinel_kwargs(target: SentinelTarget, connect_timeout: float) -> dict[str, Any]:
    """How a client talks to the sentinels themselves (their own credentials, short timeouts)."""
    return {"username": target.sentinel_username, "password": target.sentinel_password,
            "socket_connect_timeout": connect_timeout, "socket_timeout": SENTINEL_SOCKET_TIMEOUT,
            **_sentinel_tls(target)}


def _sentinel_master(target: SentinelTarget, socket_timeout: float | None, socket_connect_timeout: float) -> Redis:
    tls = _sentinel_tls(target)
    sentinel = Sentinel(list(target.sentinels),
                        sentinel_kwargs=_sentinel_kwargs(target, min(socket_connect_timeout, SENTINEL_SOCKET_TIMEOUT)))
    return sentinel.master_for(
        target.service_name,
        db=target.db, username=target.username, password=target.password,
        socket_connect_timeout=socket_connect_timeout, socket_timeout=socket_timeout,
        health_check_interval=30, connection_class=_SentinelSSLConnection if target.tls else _SentinelConnection,
        **tls,
    )


def describe_redis_url(url: str) -> str:
    """The URL with any password (the userinfo's, and ``*password=`` query options) replaced, for logs
    and error messages."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    netloc = parts.netloc
    if at and ":" in userinfo:
        netloc = f"{userinfo.partition(':')[0]}:***@{hosts}"
    query = "&".join(
        f"{segment.partition('=')[0]}=***" if segment.partition("=")[0].lower().endswith("password") else segment
        for segment in parts.query.split("&")
    ) if parts.query else parts.query
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redis_url_secrets(url: str) -> tuple[str, ...]:
    """The passwords in ``url``, as written and decoded, to scrub from any text shown to people."""
    userinfo, at, _ = urlsplit(url).netloc.rpartition("@")
    found = [userinfo.partition(":")[2]] if at else []
    found += [value for key, value in parse_qsl(urlsplit(url).query) if key.lower().endswith("password")]
    out: list[str] = []
    for secret in found:
        out += [secret, unquote(secret)]
    return tuple(dict.fromkeys(s for s in out if s))


def refusal(exc: BaseException, url: str) -> str | None:
    """Why Redis refused this client, when it answered but will not serve it (credentials, ACL, database
    index): retrying does not help, REDIS_URL must change. None for anything else (e.g. unreachable)."""
    text = _scrub(str(exc), url)
    where = describe_redis_url(url)
    if isinstance(exc, AuthenticationError) or any(code in text for code in ("NOAUTH", "WRONGPASS", "NOPERM")):
        return f"Redis at {where} refused the credentials in REDIS_URL (wrong or missing password or user)"
    if isinstance(exc, ResponseError) and "DB index" in text:
        # A Sentinel URL's path is /master-name[/db]: the index is the part after the master's name.
        path = urlsplit(url).path.strip("/")
        database = (path.partition("/")[2] if "+sentinel" in urlsplit(url).scheme else path) or "0"
        return f"Redis at {where} has no database {database} (the index in REDIS_URL): {text}"
    return None


def describe_redis_error(exc: BaseException, url: str) -> str:
    """One line for a Redis error, without the password."""
    reason = refusal(exc, url)
    if reason is None:
        reason = f"cannot reach Redis at {describe_redis_url(url)}: {type(exc).__name__}: {_scrub(str(exc), url)}"
    return reason


def _scrub(text: str, url: str) -> str:
    # Longest first: a decoded password may be a substring of its percent-encoded form.
    for secret in sorted(redis_url_secrets(url), key=len, reverse=True):
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


def async_redis_from_settings(settings: Settings, socket_timeout: float | None = None,
                              max_connections: int | None = None) -> AsyncRedis:
    """An asyncio client for ``settings.redis_url`` (plain or Sentinel), for the API's long-lived reads
    (event streams block in XREAD without holding a thread)."""
    # Imported here: only the API's event streams use asyncio, and worker processes would carry it for nothing.
    from redis.asyncio import Redis as AsyncRedis
    from redis.asyncio.sentinel import Sentinel as AsyncSentinel

    target = settings.redis_sentinel
    if target is None:
        return AsyncRedis.from_url(settings.redis_url, socket_connect_timeout=2.0, socket_timeout=socket_timeout,
                                   max_connections=max_connections, health_check_interval=30)
    tls = _sentinel_tls(target)
    sentinel = AsyncSentinel(list(target.sentinels), sentinel_kwargs=_sentinel_kwargs(target, SENTINEL_SOCKET_TIMEOUT))
    return sentinel.master_for(target.service_name, db=target.db, username=target.username,
                               password=target.password, socket_connect_timeout=2.0, socket_timeout=socket_timeout,
                               max_connections=max_connections, **tls)
