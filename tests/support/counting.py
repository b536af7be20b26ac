"""Counting Redis round trips: by the call site that sent them, or in total for one client class."""

from __future__ import annotations

import collections
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis.connection
from redis import Redis


@contextmanager
def counting() -> Iterator[collections.Counter[str]]:
    """Count socket writes by the nearest call sites outside redis-py."""
    sites: collections.Counter[str] = collections.Counter()
    original = redis.connection.AbstractConnection.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> None:
        outer = [f for f in traceback.extract_stack(limit=25)[:-1] if "/redis/" not in f.filename]
        sites[" < ".join(f"{f.name}" for f in reversed(outer[-3:]))] += 1
        original(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]
    try:
        yield sites
    finally:
        redis.connection.AbstractConnection.send_packed_command = original  # type: ignore[method-assign]


class CountingRedis(Redis):
    """A client that counts its round trips (a pipeline's execute is one) in ``CountingRedis.round_trips``."""

    round_trips = 0

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        CountingRedis.round_trips += 1
        return super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        original = pipe.execute

        def execute(raise_on_error: bool = True) -> Any:
            CountingRedis.round_trips += 1
            return original(raise_on_error)

        pipe.execute = execute  # type: ignore[method-assign]
        return pipe
