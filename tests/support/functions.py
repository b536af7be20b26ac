"""Callables for `function` nodes in tests, loaded by workers via NODEDROP_FUNCTION_MODULES."""

from __future__ import annotations

import time
import urllib.request
from functools import lru_cache
from typing import Any

from redis import Redis

from nodedrop_rq.settings import get_settings
from nodedrop_rq.workflow import register_function


@lru_cache(maxsize=1)
def _connection() -> Redis:
    # Node functions may run in a helper thread (node timeouts), outside RQ's job context.
    return Redis.from_url(get_settings().redis_url)


def _data(items: list[dict[str, Any]]) -> dict[str, Any]:
    """The execution input, as the manual trigger (allowCustomData) passes it on."""
    if not items:
        return {}
    data = items[0]["json"]
    return data.get("customData", data) if isinstance(data.get("customData", data), dict) else data


def count_run(items: list[dict[str, Any]], parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """Side effect we can count: INCR a Redis key once per run of the node."""
    key = f"test:runs:{_data(items).get('tag', 'default')}"
    _connection().incr(key)
    return items


def sleep_seconds(items: list[dict[str, Any]], parameters: dict[str, Any]) -> list[dict[str, Any]]:
    seconds = float(_data(items).get("sleep", 1))
    time.sleep(seconds)
    return items


def fail_before_attempt(items: list[dict[str, Any]], parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """Fails until it has been called items[0].json.succeedOn times (per tag)."""
    tag = _data(items).get("tag", "default")
    attempt = _connection().incr(f"test:attempts:{tag}")
    if attempt < int(_data(items).get("succeedOn", 99)):
        raise RuntimeError(f"planned failure on attempt {attempt}")
    return items


def hog_memory(items: list[dict[str, Any]], parameters: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = []
    for _ in range(int(_data(items).get("megabytes", 64))):
        blocks.append(bytearray(1024 * 1024))
    return items


register_function("count_run", count_run)
register_function("sleep_seconds", sleep_seconds)
register_function("fail_before_attempt", fail_before_attempt)
register_function("hog_memory", hog_memory)


def mark_done(key: str) -> str:
    """A plain RQ job (not a workflow node): records that it ran, e.g. as a dependent of an execution."""
    _connection().set(key, "1")
    return key


def http_count(items: list[dict[str, Any]], parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """Side effect outside Redis: POST to the test's local HTTP counter (items[0].json.counterUrl/<tag>)."""
    data = _data(items)
    request = urllib.request.Request(f"{data['counterUrl']}/{data.get('tag', 'default')}", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - a loopback URL the test gave
        pass
    return items


register_function("http_count", http_count)


def sleep_then_fail(items: list[dict[str, Any]], parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """Sleeps (the input's sleep), then fails: a node that fails before the next node boundary."""
    time.sleep(float(_data(items).get("sleep", 1)))
    raise RuntimeError("planned failure after sleeping")


register_function("sleep_then_fail", sleep_then_fail)


def hang_in_c_once(items: list[dict[str, Any]], parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """On its first run (per tag) blocks inside C code holding the GIL (a catastrophic regex), where the
    in-process job timeout (SIGALRM) cannot reach it; later runs return at once."""
    import re

    if _connection().incr(f"test:hangs:{_data(items).get('tag', 'default')}") == 1:
        re.match(r"(a+)+$", "a" * 40 + "b")  # takes hours: only a kill ends it
    return items


register_function("hang_in_c_once", hang_in_c_once)


def wait_for_gate(items: list[dict[str, Any]], parameters: dict[str, Any]) -> list[dict[str, Any]]:
    """Waits (up to 30 s) until the test sets `test:gate:<tag>`: holds an execution at a known node."""
    key = f"test:gate:{_data(items).get('tag', 'default')}"
    deadline = time.monotonic() + 30
    while not _connection().exists(key):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{key} was never set")
        time.sleep(0.02)
    return items


register_function("wait_for_gate", wait_for_gate)
