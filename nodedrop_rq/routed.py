"""The operations of :mod:`nodedrop_rq.control` and :mod:`nodedrop_rq.stats` over every Redis server of a
:class:`~nodedrop_rq.routing.QueueRouter`: an execution id is served by the server that holds it, a queue
by its own server, and the statistics cover every queue on every server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nodedrop_rq import keys
from nodedrop_rq.control import ExecutionControl, FailedExecution
from nodedrop_rq.errors import ExecutionNotFound
from nodedrop_rq.routing import QueueRouter, RedisServer, RoutedRedisError
from nodedrop_rq.settings import Settings
from nodedrop_rq.stats import QueueStats, queue_stats


class RoutedControl:
    """:class:`ExecutionControl`'s interface, each call on the server of the execution or queue. With one
    server it costs what ExecutionControl costs; with several, an id this process did not submit costs one
    EXISTS per server the first time it is looked up."""

    def __init__(self, router: QueueRouter, settings: Settings) -> None:
        self.router = router
        self.settings = settings
        self._controls: dict[str, ExecutionControl] = {}

    def control_on(self, server: RedisServer) -> ExecutionControl:
        control = self._controls.get(server.url)
        if control is None:
            control = self._controls[server.url] = ExecutionControl(server.client, self.settings)
        return control

    def _locate(self, execution_id: str) -> RedisServer:
        server = self.router.locate(execution_id)
        if server is None:
            raise ExecutionNotFound(execution_id)
        return server

    # -- by execution id ------------------------------------------------------------------------------

    def connection_of(self, execution_id: str) -> Any:
        """The client of the server that holds the execution (its state and event log)."""
        return self._locate(execution_id).client

    def get(self, execution_id: str) -> dict[str, Any]:
        server = self._locate(execution_id)
        with self.router.answering(server):
            return self.control_on(server).get(execution_id)

    def stored(self, execution_id: str) -> dict[str, Any] | None:
        """The execution's state, None if no server holds it."""
        server = self.router.locate(execution_id)
        if server is None:
            return None
        with self.router.answering(server):
            return self.control_on(server).store.get(execution_id)

    def status_of(self, execution_id: str) -> str | None:
        server = self._locate(execution_id)
        with self.router.answering(server):
            value = server.client.hget(keys.execution(execution_id), "status")
        return value.decode() if isinstance(value, bytes) else value

    def cancel(self, execution_id: str) -> dict[str, Any]:
        server = self._locate(execution_id)
        with self.router.answering(server):
            return self.control_on(server).cancel(execution_id)

    def show_failed(self, execution_id: str) -> tuple[FailedExecution, dict[str, Any] | None]:
        server = self._locate(execution_id)
        with self.router.answering(server):
            return self.control_on(server).show_failed(execution_id)

    def requeue(self, execution_id: str) -> dict[str, Any]:
        server = self._locate(execution_id)
        with self.router.answering(server):
            return self.control_on(server).requeue(execution_id)

    # -- by queue (default: EXECUTION_QUEUE) ----------------------------------------------------------

    def _on_queue(self, queue: str | None) -> tuple[RedisServer, ExecutionControl]:
        server = self.router.server_for(queue or self.settings.queue)
        return server, self.control_on(server)

    def list_failed(self, queue: str | None = None, limit: int = 100, offset: int = 0) -> list[FailedExecution]:
        server, control = self._on_queue(queue)
        with self.router.answering(server):
            return control.list_failed(queue, limit=limit, offset=offset)

    def failed_count(self, queue: str | None = None) -> int:
        server, control = self._on_queue(queue)
        with self.router.answering(server):
            return control.failed_count(queue)

    def requeue_all(self, queue: str | None = None) -> list[str]:
        server, control = self._on_queue(queue)
        with self.router.answering(server):
            return control.requeue_all(queue)


@dataclass
class FleetStats:
    """Counts of every queue on every server that answered, and the errors of those that did not."""

    rows: list[QueueStats] = field(default_factory=list)
    unreachable: list[RoutedRedisError] = field(default_factory=list)


def server_stats(router: QueueRouter, server: RedisServer) -> list[QueueStats]:
    """Two round trips on ``server``: its queue set, then LLEN/ZCARDs of its queues, pipelined."""
    return queue_stats(server.client, router.queues_on(server, server.client.smembers(keys.queues())))


def fleet_stats(router: QueueRouter) -> FleetStats:
    """Every server's :func:`server_stats`. With one server an error is raised as it comes; with several
    the servers that answer are counted and the others listed."""
    out = FleetStats()
    for server in router.servers():
        try:
            with router.answering(server):
                out.rows.extend(server_stats(router, server))
        except RoutedRedisError as exc:
            out.unreachable.append(exc)
    out.rows.sort(key=lambda row: row.queue)
    return out
