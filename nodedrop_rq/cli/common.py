"""Helpers shared by the CLI commands: settings, Redis, reading documents, printing, exit codes."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, NoReturn, TypeVar

import click
from redis import Redis
from redis.exceptions import RedisError

from nodedrop_rq import jsontext
from nodedrop_rq.connection import describe_redis_error, redis_from_settings, refusal
from nodedrop_rq.errors import ExecutionNotFound, InvalidOperation
from nodedrop_rq.routed import RoutedControl
from nodedrop_rq.routing import QueueRouter, RoutedRedisError
from nodedrop_rq.settings import Settings, SettingsError, get_settings

# Exit codes (the README's table): 0 ok, 1 the execution/node failed or the operation was refused,
# 2 bad input (document, JSON, settings, NODEDROP_FUNCTION_MODULES), 3 Redis unreachable, 4 Redis refused
# the credentials or database index of REDIS_URL, 5 cannot listen (port in use), 6 `submit --wait` gave up
# at --timeout (the execution goes on), 130 interrupted (Ctrl-C).
EXIT_FAILED, EXIT_INVALID, EXIT_UNAVAILABLE, EXIT_REFUSED, EXIT_LISTEN, EXIT_TIMEOUT = 1, 2, 3, 4, 5, 6
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])


def load_settings() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        fail(str(exc), EXIT_INVALID)


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def fail_redis(exc: BaseException, url: str) -> NoReturn:
    """One line for a Redis error: exit 4 when Redis refused us (REDIS_URL must change), else 3."""
    if isinstance(exc, RoutedRedisError):  # one of several servers: say which, and which queues it serves
        fail(str(exc), EXIT_REFUSED if refusal(exc.cause, exc.url) else EXIT_UNAVAILABLE)
    fail(describe_redis_error(exc, url), EXIT_REFUSED if refusal(exc, url) else EXIT_UNAVAILABLE)


def connect(settings: Settings) -> Redis:
    connection = redis_from_settings(settings, socket_timeout=10)
    return connection


def router(settings: Settings) -> QueueRouter:
    """The servers of REDIS_URL and EXECUTION_QUEUE_REDIS_URLS, with the CLI's command timeout."""
    return QueueRouter(settings, socket_timeout=10)


def routed_control(settings: Settings) -> RoutedControl:
    return RoutedControl(router(settings), settings)


@contextmanager
def redis_errors(settings: Settings) -> Iterator[None]:
    try:
        yield
    except RedisError as exc:
        fail_redis(exc, settings.redis_url)


def check_redis(settings: Settings) -> None:
    """Exit 4 at once when Redis refuses REDIS_URL's credentials or database: waiting for it, as the
    worker pool and the scheduler do while Redis is unreachable, would never end. Unreachable is fine."""
    connection = redis_from_settings(settings, socket_timeout=2)
    try:
        connection.ping()
    except RedisError as exc:
        if refusal(exc, settings.redis_url):
            fail_redis(exc, settings.redis_url)
    finally:
        connection.close()


def load_functions(settings: Settings) -> None:
    """Import NODEDROP_FUNCTION_MODULES once, here: a missing one is a bad setting (exit 2), not a crash
    loop of every worker process."""
    from nodedrop_rq.workflow import load_function_modules

    try:
        load_function_modules(settings.function_modules)
    except ImportError as exc:
        fail(f"NODEDROP_FUNCTION_MODULES: {exc}", EXIT_INVALID)


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


def read_text_source(source: str) -> str:
    """FILE or '-' (stdin) as text, failing with a message that names the source."""
    name = "standard input" if source == "-" else source
    try:
        if source == "-":
            return sys.stdin.read()
        with open(source, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        fail(f"cannot read {name}: {exc.strerror or exc}", EXIT_INVALID)
    except UnicodeDecodeError as exc:
        fail(f"{name} is not UTF-8 text: {exc.reason}", EXIT_INVALID)


def read_json_source(source: str) -> Any:
    """Parse FILE or '-' (stdin) as strict JSON, failing with a message that names the source."""
    name = "standard input" if source == "-" else source
    try:
        return jsontext.loads(read_text_source(source))
    except jsontext.JsonTextError as exc:
        fail(f"{name} is not valid JSON: {exc}", EXIT_INVALID)


def parse_json_option(value: str | None, option: str) -> Any:
    if value is None:
        return None
    try:
        return jsontext.loads(value)
    except jsontext.JsonTextError as exc:
        fail(f"{option} is not valid JSON: {exc}", EXIT_INVALID)


def print_json(value: Any) -> None:
    """Strict JSON (no NaN or Infinity, see :func:`jsontext.dumps`), whatever the execution stored."""
    click.echo(jsontext.dumps(value))
