"""The command line with bad input, a Redis that is down or refuses us, and a pool nobody started:
one line and the README's exit code, never a traceback."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nodedrop_rq.embedded_redis import find_redis_server, free_port
from tests.conftest import EXAMPLES, ROOT, child_env, wait_for
from tests.support import workflows


def cli(redis_url: str, *args: str, stdin: str | None = None, timeout: float = 60, **env: str):
    return subprocess.run([sys.executable, "-m", "nodedrop_rq", *args], env=child_env(redis_url, **env), cwd=ROOT,
                          input=stdin, capture_output=True, text=True, timeout=timeout)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def strict(text: str) -> object:
    def refuse(name: str) -> object:
        raise AssertionError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


UNREACHABLE = f"redis://127.0.0.1:{free_port()}/0"


@pytest.mark.parametrize(("text", "needle"), [
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ('{"a": ' + "[" * 3000 + "]" * 3000 + "}", "nested too deeply"),
    ('{"nodes": [' + "7" * 5000 + "]}", "4300 digits"),
    ('{"name": "\\ud800"}', "lone surrogate"),
    ('{"name": NaN}', "NaN is not valid JSON"),
])
def test_run_refuses_documents_that_are_not_strict_json_in_one_line(tmp_path: Path, text, needle):
    source = tmp_path / "doc.json"
    source.write_text(text)
    done = cli(UNREACHABLE, "run", str(source))
    assert done.returncode == 2
    assert needle in one_line(done)


def test_input_that_is_not_an_object_is_invalid_input_not_an_invalid_workflow():
    for command in ("run", "submit"):
        done = cli(UNREACHABLE, command, str(EXAMPLES / "order-routing.json"), "--input", "42")
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("error: --input is invalid"), done.stderr
        assert "workflow" not in done.stderr.splitlines()[0]


def test_run_json_is_strict_json_even_for_nan_output():
    code = workflows.node("odd", "code", {"language": "javascript",
                                          "code": 'return [{nan: 0/0, inf: -1/0, text: "\\ud800", ok: 1}];'})
    workflow = workflows.chain("odd", workflows.node("start", "manual-trigger"), code)
    for args in (["--json"], []):
        done = cli(UNREACHABLE, "run", "-", *args, stdin=json.dumps(workflow))
        assert done.returncode == 0, done.stderr
        printed = done.stdout if args else done.stdout[done.stdout.index("\n[") + 1:]
        result = strict(printed)
        output = result["output"] if args else result
        assert output == [{"json": {"nan": None, "inf": None, "text": "\ufffd", "ok": 1}}]


def test_status_json_is_strict_json(redis_url, redis_conn):
    redis_conn.hset("nodedrop:execution:odd1", mapping={
        "id": "odd1", "status": "succeeded", "output": '[{"json": {"a": NaN, "b": -Infinity, "c": "\\ud800"}}]'})
    done = cli(redis_url, "status", "odd1", "--json")
    assert done.returncode == 0, done.stderr
    assert strict(done.stdout)["output"] == [{"json": {"a": None, "b": None, "c": "\ufffd"}}]
    human = cli(redis_url, "status", "odd1")
    assert human.returncode == 0 and '"a": null' in human.stdout  # output as JSON, not a Python repr


def test_demo_with_an_unreachable_redis_prints_one_line_and_exits_3():
    done = cli(UNREACHABLE, "demo", timeout=60)
    assert done.returncode == 3
    assert one_line(done).startswith("error: cannot reach Redis at redis://127.0.0.1:")


@pytest.mark.parametrize("command", [["worker", "--concurrency", "1"], ["serve", "--workers", "0", "--port", "0"]])
def test_a_missing_function_module_stops_worker_and_serve_with_exit_2(redis_url, command):
    if "--port" in command:
        command[-1] = str(free_port())
    done = cli(redis_url, *command, NODEDROP_FUNCTION_MODULES="tests.support.functions,no_such_module_here")
    assert done.returncode == 2
    assert one_line(done) == ("error: NODEDROP_FUNCTION_MODULES: cannot load function module "
                              "'no_such_module_here': No module named 'no_such_module_here'")


@pytest.fixture(scope="module")
def password_redis(tmp_path_factory):
    port = free_port()
    server = subprocess.Popen([find_redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--requirepass", "pw-5e6f7a", "--databases", "4",
                               "--dir", str(tmp_path_factory.mktemp("redis"))],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def up() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    wait_for(up, 10, what="the password-protected redis-server")
    yield port
    server.terminate()
    server.wait(10)


@pytest.mark.parametrize(("url", "needle"), [
    ("redis://:wrong-pw@127.0.0.1:{port}/0", "refused the credentials"),
    ("redis://127.0.0.1:{port}/0", "refused the credentials"),
    ("redis://:pw-5e6f7a@127.0.0.1:{port}/9", "has no database 9"),
])
@pytest.mark.parametrize("command", [["stats"], ["status", "abc"], ["worker", "--concurrency", "1"], ["scheduler"]])
def test_redis_refusing_credentials_or_database_is_exit_4_not_unreachable(password_redis, url, needle, command):
    done = cli(url.format(port=password_redis), *command, timeout=30)
    assert done.returncode == 4, done.stderr
    line = one_line(done)
    assert needle in line and "wrong-pw" not in line and "pw-5e6f7a" not in line


def test_unreachable_redis_is_exit_3(redis_url):
    done = cli(UNREACHABLE, "stats")
    assert done.returncode == 3
    assert one_line(done).startswith("error: cannot reach Redis")


def test_submit_wait_without_a_worker_says_so_and_times_out_with_exit_6(redis_url):
    started = time.monotonic()
    done = cli(redis_url, "submit", "-", "--wait", "--timeout", "6.5", stdin=json.dumps(workflows.quick()))
    assert done.returncode == 6, done.stderr
    execution_id = done.stdout.splitlines()[0].removeprefix("submitted ")
    assert len(execution_id) >= 16 and " " not in execution_id, done.stdout
    assert "no worker has picked up" in done.stderr and "nodedrop-rq worker" in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: gave up waiting after 6.5 s") and execution_id in last
    assert time.monotonic() - started < 30


def test_ctrl_c_during_submit_wait_says_what_goes_on(redis_url):
    process = subprocess.Popen([sys.executable, "-m", "nodedrop_rq", "submit", "-", "--wait"], env=child_env(redis_url),
                               cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps(workflows.quick()))
    process.stdin.close()
    first = process.stdout.readline()  # the id comes first, before any waiting
    assert first.startswith("submitted "), first
    process.send_signal(signal.SIGINT)
    process.stdin = None  # closed above; communicate() would flush it
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert f"interrupted: execution {first.split()[1]} is still queued" in stderr
    assert "nodedrop-rq cancel" in stderr


def test_exporter_on_a_port_in_use_exits_5_with_one_line(redis_url):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "exporter", "--host", "127.0.0.1", "--port", str(port)],
                              env=child_env(redis_url), cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 5
    assert "Traceback" not in done.stderr  # after its start-up log line, one line
    last = done.stderr.strip().splitlines()[-1]
    assert last == f"error: cannot listen on 127.0.0.1:{port}: the port is already in use"
