"""The exporter as a real process, scraped over HTTP."""

from __future__ import annotations

import json
import time

from prometheus_client.parser import text_string_to_metric_families

from nodedrop_rq.embedded_redis import free_port
from nodedrop_rq.submit import submit_execution
from tests.conftest import wait_for
from tests.exporter.conftest import get as _get
from tests.exporter.conftest import q, scrape
from tests.support import workflows


def test_queue_gauges_follow_submissions(start_exporter, redis_conn, settings):
    base = start_exporter()
    for _ in range(3):
        submit_execution(workflows.quick(), connection=redis_conn, settings=settings)
    # The oldest waits at least a second: the age gauge is read from the job's enqueue time.
    wait_for(lambda: scrape(base).get(q("nodedrop_queue_oldest_waiting_age_seconds"), 0) >= 1.0, 10,
             what="the oldest execution to have waited 1 s")
    samples = scrape(base)
    assert samples[("nodedrop_redis_up", ())] == 1
    assert samples[q("nodedrop_queue_waiting")] == 3
    assert samples[q("nodedrop_queue_active")] == 0
    assert samples[q("nodedrop_queue_failed")] == 0
    assert samples[q("nodedrop_queue_scheduled")] == 0
    assert samples[q("nodedrop_queue_oldest_waiting_age_seconds")] >= 1.0
    # ceil(3 / EXECUTION_WORKER_CONCURRENCY=5); no attempt has ended, so the latency rule is the depth rule
    assert samples[q("nodedrop_workers_desired_by_depth")] == 1
    assert samples[q("nodedrop_workers_desired")] == 1
    assert samples[q("nodedrop_queue_wait_seconds_count")] == 0
    assert samples[("nodedrop_worker_capacity", ())] == 0
    assert samples[("nodedrop_redis_memory_used_bytes", ())] > 0
    assert ("nodedrop_exporter_scrape_duration_seconds", ()) in samples


def test_counters_histogram_and_workers_after_real_executions(start_exporter, start_pool, redis_conn, settings):
    base = start_exporter()
    start_pool(concurrency=2)
    ids = [submit_execution(workflows.quick(), connection=redis_conn, settings=settings) for _ in range(4)]
    wait_for(lambda: all(redis_conn.hget(f"nodedrop:execution:{i}", "status") == b"succeeded" for i in ids), 30,
             what="executions to succeed")
    def two_idle_workers():
        samples = scrape(base)
        return samples if samples[("nodedrop_workers", (("state", "idle"),))] == 2 else None

    samples = wait_for(two_idle_workers, 15, what="two live idle workers")
    assert samples[q("nodedrop_executions_completed_total")] == 4
    assert samples[q("nodedrop_executions_failed_total")] == 0
    assert samples[q("nodedrop_execution_duration_seconds_count")] == 4
    assert samples[("nodedrop_execution_duration_seconds_bucket", (("le", "+Inf"), ("queue", "executions")))] == 4
    assert samples[q("nodedrop_queue_completed")] == 4
    assert samples[("nodedrop_workers", (("state", "idle"),))] == 2
    assert samples[("nodedrop_workers", (("state", "busy"),))] == 0
    assert samples[("nodedrop_worker_utilization_ratio", ())] == 0
    assert samples[q("nodedrop_workers_desired")] == 0


def test_openmetrics_when_asked(start_exporter):
    base = start_exporter()
    status, headers, text = _get(base + "/metrics", accept="application/openmetrics-text; version=1.0.0")
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert text.rstrip().endswith("# EOF")
    assert "# TYPE nodedrop_executions_completed counter" in text


def test_metric_names_follow_prometheus_conventions(start_exporter, redis_conn, settings):
    submit_execution(workflows.quick(), connection=redis_conn, settings=settings)
    base = start_exporter()
    _, _, text = _get(base + "/metrics")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, family in families.items():
        assert name.startswith("nodedrop_")
        assert family.documentation, f"{name} has no HELP"
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
        for sample in family.samples:
            assert "worker" not in sample.labels, "no per-worker labels"


def test_redis_down_keeps_serving_without_stale_numbers(start_exporter):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    base = start_exporter(dead)
    started = time.monotonic()
    samples = scrape(base)
    assert time.monotonic() - started < 5
    assert samples[("nodedrop_redis_up", ())] == 0
    assert not any(name.startswith("nodedrop_queue_") for name, _ in samples)
    status, _, body = _get(base + "/health", ok_only=False)
    assert status == 503
    assert json.loads(body)["status"] == "unhealthy"


def test_health_when_redis_answers(start_exporter):
    status, _, body = _get(start_exporter() + "/health")
    assert status == 200
    assert json.loads(body) == {"status": "healthy", "redis": "up"}
