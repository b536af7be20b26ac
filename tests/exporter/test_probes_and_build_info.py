"""The exporter's probe paths (liveness independent of Redis, readiness that follows it) and build_info."""

from __future__ import annotations

import json
import platform
from importlib.metadata import version

from nodedrop_rq.embedded_redis import free_port
from tests.exporter.conftest import get, scrape


def test_liveness_holds_and_readiness_fails_while_redis_is_down(start_exporter):
    base = start_exporter(f"redis://127.0.0.1:{free_port()}/0")
    status, _, body = get(base + "/healthz", ok_only=False)
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, _, body = get(base + "/healthz/readiness", ok_only=False)
    assert status == 503
    assert json.loads(body)["redis"] == "down"


def test_readiness_when_redis_answers(start_exporter):
    base = start_exporter()
    status, _, body = get(base + "/healthz/readiness", ok_only=False)
    assert (status, json.loads(body)) == (200, {"status": "healthy", "redis": "up"})
    status, _, body = get(base + "/nowhere", ok_only=False)
    assert status == 404 and "/healthz" in json.loads(body)["error"]


def test_build_info_names_the_versions_even_without_redis(start_exporter):
    expected = (("python_version", platform.python_version()), ("rq_version", version("rq")),
                ("version", version("nodedrop-rq")))
    for base in (start_exporter(), start_exporter(f"redis://127.0.0.1:{free_port()}/0")):
        samples = scrape(base)
        assert samples[("nodedrop_build_info", expected)] == 1
        assert len([key for key in samples if key[0] == "nodedrop_build_info"]) == 1
