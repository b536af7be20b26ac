"""Helpers shared by the CLI commands: settings, Redis, reading documents, printing."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

import click
from redis import Redis
from redis.exceptions import RedisError

from nodedrop_rq.connection import describe_redis_url, redis_from_settings
from nodedrop_rq.errors import ExecutionNotFound, InvalidOperation
from nodedrop_rq.settings import Settings, SettingsError, get_settings

# Exit codes: 0 ok, 1 the execution/node failed or the operation was refused, 2 bad input,
# 3 Redis unreachable.
EXIT_FAILED, EXIT_INVALID, EXIT_UNAVAILABLE = 1, 2, 3

F = TypeVar("F", bound=Callable[..., Any])


def load_settings() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        fail(str(exc), EXIT_INVALID)


def fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def connect(settings: Settings) -> Redis:
    connection = redis_from_settings(settings, socket_timeout=10)
    return connection


@contextmanager
def redis_errors(settings: Settings) -> Iterator[None]:
    try:
        yield
    except RedisError as exc:
        fail(f"cannot reach Redis at {describe_redis_url(settings.redis_url)}: {exc}", EXIT_UNAVAILABLE)


def handles_operation_errors(func: F) -> F:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ExecutionNotFound as exc:
            fail(str(exc), EXIT_FAILED)
        except InvalidOperation as exc:
            fail(str(exc), EXIT_FAILED)

    return wrapper  # type: ignore[return-value]


def read_json_source(source: str) -> Any:
    """Parse FILE or '-' (stdin) as JSON, failing with a message that names the source."""
    name = "standard input" if source == "-" else source
    try:
        text = sys.stdin.read() if source == "-" else open(source, encoding="utf-8").read()  # noqa: SIM115
    except OSError as exc:
        fail(f"cannot read {name}: {exc.strerror}", EXIT_INVALID)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{name} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", EXIT_INVALID)


def parse_json_option(value: str | None, option: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        fail(f"{option} is not valid JSON: {exc.msg} at column {exc.colno}", EXIT_INVALID)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))
