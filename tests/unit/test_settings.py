import subprocess
import sys

import pytest

from nodedrop_rq.settings import Settings, SettingsError


def test_defaults_follow_the_seed():
    s = Settings.from_env({})
    assert s.worker_concurrency == 5
    assert s.state_ttl == 86400
    assert s.completion_ttl == 3600
    assert s.queue == "executions"
    assert s.retry_intervals == (2, 4, 8)
    assert s.max_attempts == 4
    assert s.redis_url_given is False
    assert (s.target_wait_seconds, s.worker_health_port) == (5.0, 0)


def test_values_are_read_from_the_environment():
    s = Settings.from_env({
        "REDIS_URL": "rediss://:secret@redis.example:6380/2",
        "EXECUTION_WORKER_CONCURRENCY": "10",
        "EXECUTION_STATE_TTL": "600",
        "EXECUTION_COMPLETION_TTL": "60",
        "EXECUTION_QUEUE": "high",
        "EXECUTION_RETRY_INTERVALS": "1, 3",
        "EXECUTION_JOB_TIMEOUT": "30",
        "EXECUTION_TARGET_WAIT_SECONDS": "0.5",
        "NODEDROP_WORKER_HEALTH_PORT": "9728",
    })
    assert s.redis_url == "rediss://:secret@redis.example:6380/2"
    assert s.redis_url_given
    assert (s.worker_concurrency, s.state_ttl, s.completion_ttl) == (10, 600, 60)
    assert s.queue == "high"
    assert s.retry_intervals == (1, 3)
    assert s.max_attempts == 3
    assert s.job_timeout == 30
    assert (s.target_wait_seconds, s.worker_health_port) == (0.5, 9728)


def test_api_token_is_not_in_repr():
    s = Settings.from_env({"NODEDROP_API_TOKEN": "hunter2"})
    assert s.api_token == "hunter2"
    assert "hunter2" not in repr(s)


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("EXECUTION_WORKER_CONCURRENCY", "-1", "at least 1"),
        ("EXECUTION_WORKER_CONCURRENCY", "five", "whole number"),
        ("EXECUTION_STATE_TTL", "0", "at least 1"),
        ("EXECUTION_COMPLETION_TTL", "1.5", "whole number"),
        ("EXECUTION_RETRY_INTERVALS", "", "comma-separated"),
        ("EXECUTION_RETRY_INTERVALS", "2,,8", "comma-separated"),
        ("EXECUTION_RETRY_INTERVALS", "2,-4", "negative"),
        ("EXECUTION_RETRY_INTERVALS", "2,x", "'x'"),
        ("EXECUTION_QUEUE", "a b", "letters"),
        ("EXECUTION_JOB_TIMEOUT", "-5", "at least 1"),
        ("EXECUTION_TARGET_WAIT_SECONDS", "0", "at least 0.001"),
        ("EXECUTION_TARGET_WAIT_SECONDS", "nan", "finite"),
        ("EXECUTION_TARGET_WAIT_SECONDS", "soon", "number of seconds"),
        ("NODEDROP_WORKER_HEALTH_PORT", "70000", "at most 65535"),
    ],
)
def test_bad_values_name_the_variable_and_the_value(name, value, fragment):
    with pytest.raises(SettingsError) as info:
        Settings.from_env({name: value})
    message = str(info.value)
    assert name in message
    assert repr(value) in message
    assert fragment in message


def test_bad_redis_url_never_echoes_the_password():
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"REDIS_URL": "http://:topsecret@host"})
    assert "REDIS_URL" in str(info.value)
    assert "topsecret" not in str(info.value)


@pytest.mark.parametrize("argv", [["-m", "nodedrop_rq", "stats"], ["-m", "nodedrop_rq", "worker"],
                                  ["-m", "exporter"]])
def test_processes_stop_at_start_with_one_line(argv):
    env = {"EXECUTION_STATE_TTL": "-3", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == ["error: invalid EXECUTION_STATE_TTL='-3': must be at least 1"]
