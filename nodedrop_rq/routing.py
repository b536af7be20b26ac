"""Which Redis serves which queue: queues spread over several Redis servers, and sharded queues.

``EXECUTION_QUEUE_REDIS_URLS`` maps queues to Redis URLs (plain or Sentinel); every other queue lives on
``REDIS_URL``'s server, the *home* server, which also holds the schedules. ``EXECUTION_QUEUE_SHARDS``
names groups of queues: a submit to a group goes to one of its queues, picked by a stable hash (CRC-32)
of the workflow id (or a caller's shard key), so one workflow's executions always land in the same queue
and are dequeued in their order of arrival there.

Every component asks a :class:`QueueRouter`: which server serves queue Q (:meth:`QueueRouter.server_for`),
which queues live on server S (:meth:`QueueRouter.queues_on`), every server (:meth:`QueueRouter.servers`),
and where an execution id lives (:meth:`QueueRouter.locate`: the server recorded at submit when this
process submitted it, else one EXISTS on each server). Clients are created once per distinct URL.

Everything about an execution (its state, RQ job, registries, counters, idempotency key) is on the server
of its queue. With more than one server, an error from a server is raised as :class:`RoutedRedisError`,
which names that server and its queues, so answers can say which queues are affected.
"""

from __future__ import annotations

import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from nodedrop_rq import keys
from nodedrop_rq.connection import describe_redis_error, describe_redis_url, redis_from_settings
from nodedrop_rq.rq_integration.names import JOB_KEY_PREFIX
from nodedrop_rq.settings import Settings, SettingsError

# Execution ids this process submitted, with their server: status polls after a submit cost one lookup.
REMEMBERED_IDS = 10_000


@dataclass(frozen=True, eq=False)
class RedisServer:
    url: str
    client: Redis
    # The configured queues that live here: EXECUTION_QUEUE (if it does), mapped queues, shards.
    queues: tuple[str, ...]
    # REDIS_URL's server: the schedules, and every queue the map does not name.
    home: bool

    @property
    def where(self) -> str:
        """The URL without its passwords, for messages and the exporter's ``redis`` label."""
        return describe_redis_url(self.url)


class RoutedRedisError(RedisError):
    """A Redis error from one server of several, naming the server (never its password) and its queues."""

    def __init__(self, server: RedisServer, cause: RedisError) -> None:
        self.url = server.url
        self.where = server.where
        self.queues = server.queues
        self.cause = cause
        super().__init__(f"{describe_redis_error(cause, server.url)} (the Redis of "
                         f"{describe_queues(server)})")


def describe_queues(server: RedisServer) -> str:
    names = ", ".join(server.queues)
    if server.home:
        return f"queue(s) {names}, any queue not in EXECUTION_QUEUE_REDIS_URLS, and the schedules" if names else \
            "queues not in EXECUTION_QUEUE_REDIS_URLS, and the schedules"
    return f"queue(s) {names}"


def shard_index(key: str, count: int) -> int:
    """The shard of ``key`` among ``count``: CRC-32 of its UTF-8 bytes, the same in every process and
    release (Python's ``hash()`` of a str changes per process)."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % count


def workflow_key(workflow: Any) -> str:
    """What sharding hashes by default: the workflow's ``id``, else its ``name`` (bare or enveloped)."""
    document = workflow.get("workflow", workflow) if isinstance(workflow, dict) else None
    if isinstance(document, dict):
        for field in ("id", "name"):
            value = document.get(field)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
                return str(value)
    return ""


def shard_queue(settings: Settings, queue: str, key: str) -> str:
    """``queue`` itself, or for a group of EXECUTION_QUEUE_SHARDS the shard that ``key`` hashes to."""
    shards = dict(settings.queue_shards).get(queue)
    return shards[shard_index(key, len(shards))] if shards else queue


def expand_queues(settings: Settings, queues: Iterable[str]) -> list[str]:
    """Queue names with every shard group replaced by its shards (what a worker serves)."""
    groups = dict(settings.queue_shards)
    out: list[str] = []
    for queue in queues:
        for name in groups.get(queue, (queue,)):
            if name not in out:
                out.append(name)
    return out


def worker_settings(settings: Settings, queues: Iterable[str]) -> tuple[Settings, list[str]]:
    """Settings whose ``redis_url`` is the server of ``queues`` (groups expanded), and those queues.
    SettingsError when they live on different servers: one RQ worker reads one Redis."""
    names = expand_queues(settings, queues) or [settings.queue]
    mapped = dict(settings.queue_redis_urls)
    by_url: dict[str, list[str]] = {}
    for name in names:
        by_url.setdefault(mapped.get(name, settings.redis_url), []).append(name)
    if len(by_url) > 1:
        where = "; ".join(f"{', '.join(qs)} on {describe_redis_url(url)}" for url, qs in by_url.items())
        raise SettingsError(f"these queues live on different Redis servers ({where}): start one worker per server")
    return settings.with_overrides(redis_url=next(iter(by_url))), names


class QueueRouter:
    """The servers of the settings, with one client per distinct URL (made on first use).

    ``socket_timeout``/``socket_connect_timeout`` apply to every client; ``prepare(client)`` is called on
    each new one (e.g. to set a retry policy); ``home_client`` is used for REDIS_URL instead of a new one
    (and is not closed by :meth:`close`)."""

    def __init__(self, settings: Settings, *, socket_timeout: float | None = None,
                 socket_connect_timeout: float = 2.0, prepare: Callable[[Redis], None] | None = None,
                 home_client: Redis | None = None) -> None:
        self.settings = settings
        self._timeouts = {"socket_timeout": socket_timeout, "socket_connect_timeout": socket_connect_timeout}
        self._prepare = prepare
        self._mapped = dict(settings.queue_redis_urls)
        urls = [settings.redis_url, *(url for url in self._mapped.values() if url != settings.redis_url)]
        self._urls = list(dict.fromkeys(urls))
        self._queues: dict[str, list[str]] = {url: [] for url in self._urls}
        configured = [settings.queue, *self._mapped, *(s for _, shards in settings.queue_shards for s in shards)]
        for queue in dict.fromkeys(configured):
            self._queues[self.url_for(queue)].append(queue)
        self._clients: dict[str, Redis] = {}
        self._owned: list[Redis] = []
        if home_client is not None:
            self._clients[settings.redis_url] = home_client
        self._servers: dict[str, RedisServer] = {}
        self._remembered: OrderedDict[str, str] = OrderedDict()

    # -- queues and servers ---------------------------------------------------------------------------

    @property
    def multi(self) -> bool:
        """More than one Redis server is configured."""
        return len(self._urls) > 1

    def url_for(self, queue: str) -> str:
        return self._mapped.get(queue, self.settings.redis_url)

    def server_for(self, queue: str) -> RedisServer:
        return self._server(self.url_for(queue))

    def connection_for(self, queue: str) -> Redis:
        return self.server_for(queue).client

    @property
    def home(self) -> RedisServer:
        return self._server(self.settings.redis_url)

    def servers(self) -> list[RedisServer]:
        """Every server, the home server first."""
        return [self._server(url) for url in self._urls]

    def serves(self, server: RedisServer, queue: str) -> bool:
        return self.url_for(queue) == server.url

    def queues_on(self, server: RedisServer, known: Iterable[str] = ()) -> list[str]:
        """The configured queues of ``server`` and those of ``known`` (e.g. its ``nodedrop:queues`` set)
        that route to it; a queue that was moved to another server is reported by that one only."""
        names = {q.decode() if isinstance(q, bytes) else q for q in known}
        return sorted({q for q in names if self.serves(server, q)} | set(server.queues))

    def _server(self, url: str) -> RedisServer:
        server = self._servers.get(url)
        if server is None:
            server = RedisServer(url, self._client(url), tuple(self._queues.get(url, ())),
                                 url == self.settings.redis_url)
            self._servers[url] = server
        return server

    def _client(self, url: str) -> Redis:
        client = self._clients.get(url)
        if client is None:
            client = redis_from_settings(self.settings.with_overrides(redis_url=url), **self._timeouts)
            if self._prepare is not None:
                self._prepare(client)
            self._clients[url] = client
            self._owned.append(client)
        return client

    # -- executions -----------------------------------------------------------------------------------

    def remember(self, execution_id: str, queue: str) -> None:
        self._remember(execution_id, self.url_for(queue))

    def _remember(self, execution_id: str, url: str) -> None:
        self._remembered[execution_id] = url
        self._remembered.move_to_end(execution_id)
        while len(self._remembered) > REMEMBERED_IDS:
            self._remembered.popitem(last=False)

    def locate(self, execution_id: str) -> RedisServer | None:
        """The server that holds the execution (its state or its RQ job), None if none does. One server:
        that one, without a lookup. Several: the one recorded at submit, else one EXISTS per server; a
        server that does not answer raises (as RoutedRedisError) only if no other holds the id."""
        if not self.multi:
            return self.home
        first = self._remembered.get(execution_id)
        order = sorted(self.servers(), key=lambda s: s.url != first)
        failure: RoutedRedisError | None = None
        for server in order:
            try:
                found = server.client.exists(keys.execution(execution_id), JOB_KEY_PREFIX + execution_id)
            except RedisError as exc:
                failure = failure or RoutedRedisError(server, exc)
                continue
            if found:
                self._remember(execution_id, server.url)
                return server
        if failure is not None:
            raise failure
        return None

    # -- errors and lifecycle -------------------------------------------------------------------------

    @contextmanager
    def answering(self, server: RedisServer) -> Iterator[None]:
        """Raise a Redis error of ``server`` as RoutedRedisError when there are several servers (with one,
        errors pass unchanged, as before the map existed)."""
        try:
            yield
        except RoutedRedisError:
            raise
        except RedisError as exc:
            if not self.multi:
                raise
            raise RoutedRedisError(server, exc) from exc

    @property
    def urls(self) -> list[str]:
        """Every server's URL, REDIS_URL first (e.g. to scrub their passwords from text)."""
        return list(self._urls)

    def close(self) -> None:
        for client in self._owned:
            client.close()
        self._owned.clear()


def submit_routed(submit: Callable[..., str], router: QueueRouter, settings: Settings, workflow: Any,
                  input: Any, queue: str | None, shard_key: str | None, **options: Any) -> str:  # noqa: A002
    """Submit through ``submit`` (:func:`nodedrop_rq.submit.submit_execution`) on the Redis of the queue
    (the shard for a group), and remember where the id lives."""
    name = shard_queue(settings, queue or settings.queue, shard_key or workflow_key(workflow))
    server = router.server_for(name)
    with router.answering(server):
        execution_id = submit(workflow, input, connection=server.client, settings=settings, queue=name, **options)
    router.remember(execution_id, name)
    return execution_id


_default_routers: dict[Settings, QueueRouter] = {}


def default_router(settings: Settings) -> QueueRouter:
    """One router per settings object in this process (what a submit without a connection uses)."""
    router = _default_routers.get(settings)
    if router is None:
        router = _default_routers.setdefault(settings, QueueRouter(settings))
    return router
