import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from nodedrop_rq.workflow import Limits

from .helpers import node, out, run, trigger, workflow

# Tests reach their local server through the SSRF allow-list, as an operator would.
LOCAL = Limits(allowed_networks=("127.0.0.1/32",))


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, status, body, content_type="application/json", headers=None):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.startswith("/json"):
            self._send(200, json.dumps({"ok": True, "path": self.path, "agent": self.headers.get("X-Test")}))
        elif self.path == "/list":
            self._send(200, "[1, 2]")
        elif self.path == "/text":
            self._send(200, "plain text", "text/plain; charset=utf-8")
        elif self.path == "/missing":
            self._send(404, '{"error": "nope"}')
        elif self.path == "/redirect":
            self._send(302, "", "text/plain", {"Location": "/json?from=redirect"})
        elif self.path == "/loop":
            self._send(302, "", "text/plain", {"Location": "/loop"})
        elif self.path == "/big":
            self._send(200, "x" * 5000, "text/plain")
        elif self.path == "/slow":
            threading.Event().wait(2)
            self._send(200, "{}")
        else:
            self._send(500, "{}")

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length).decode()
        self._send(201, json.dumps({"received": body, "type": self.headers.get("Content-Type")}))


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def request(input_data=None, limits=LOCAL, settings=None, **params):
    return run(workflow([trigger(), node("h", "http-request", settings=settings, **params)]), input_data, limits=limits)


def test_get_json_with_expression_url_and_headers(server):
    result = request({"id": 7}, url=server + "/json?id={{ $json.id }}", headers='{"X-Test": "yes"}')
    assert out(result, "h") == [{"ok": True, "path": "/json?id=7", "agent": "yes"}]


def test_full_response(server):
    item = out(request(url=server + "/json", responseFormat="fullResponse"), "h")[0]
    assert item["status"] == 200 and item["ok"] is True and item["statusText"] == "OK"
    assert item["data"]["ok"] is True
    assert item["headers"]["content-type"] == "application/json"
    assert isinstance(item["responseTime"], int)


def test_non_object_bodies_are_the_item_as_they_are(server):
    # HttpRequest.node.ts: `[{ main: [{ json: result }] }]` whatever the body is.
    assert out(request(url=server + "/list"), "h") == [[1, 2]]
    assert out(request(url=server + "/text"), "h") == ["plain text"]


def test_post_object_body_is_json(server):
    item = out(request(method="POST", url=server + "/post", body={"a": 1}), "h")[0]
    assert json.loads(item["received"]) == {"a": 1} and item["type"] == "application/json"
    item = out(request(method="POST", url=server + "/post", body="raw"), "h")[0]
    assert item["received"] == "raw" and item["type"] is None


def test_http_error_status(server):
    result = request(url=server + "/missing")
    assert result.status == "failed" and "HTTP 404" in result.error.message
    kept = request(url=server + "/missing", settings={"alwaysOutputData": True}, responseFormat="fullResponse")
    assert out(kept, "h")[0]["status"] == 404
    soft = request(url=server + "/missing", settings={"continueOnFail": True})
    item = out(soft, "h")[0]
    # HttpRequest.node.ts execute: continueOnFail alone gives this item (error: true plus the details).
    assert item["error"] is True and "HTTP 404" in item["errorMessage"]
    assert item["errorType"] == "HTTP_ERROR" and item["statusCode"] == 404 and item["details"] == {}


def test_redirects(server):
    assert out(request(url=server + "/redirect"), "h")[0]["path"] == "/json?from=redirect"
    assert "redirects" in request(url=server + "/loop", maxRedirects=2).error.message
    not_followed = request(url=server + "/redirect", followRedirects=False)
    assert "HTTP 302" in not_followed.error.message  # not a 2xx, as in NodeDrop
    kept = request(
        url=server + "/redirect",
        followRedirects=False,
        responseFormat="fullResponse",
        settings={"alwaysOutputData": True},
    )
    assert out(kept, "h")[0]["status"] == 302


def test_timeout_and_response_size(server):
    slow = request(url=server + "/slow", timeout=100)
    assert slow.status == "failed" and "timed out after 100 ms" in slow.error.message
    big = request(url=server + "/big", limits=Limits(allowed_networks=("127.0.0.0/8",), max_response_bytes=1000))
    assert "larger than 1000 bytes" in big.error.message


def test_private_addresses_refused_by_default(server):
    result = request(url=server + "/json", limits=Limits())
    assert result.status == "failed" and "non-public address 127.0.0.1" in result.error.message
    metadata = request(url="http://169.254.169.254/latest/meta-data/")
    assert "not allowed" in metadata.error.message


def test_bad_scheme_at_run_time():
    result = request({"u": "file:///etc/passwd"}, url="{{ $json.u }}")
    assert result.status == "failed" and "only http:// and https://" in result.error.message


def test_allow_list_admits_only_its_networks(server):
    other = request(url=server + "/json", limits=Limits(allowed_networks=("10.0.0.0/8",)))
    assert other.status == "failed" and "non-public address 127.0.0.1" in other.error.message
    listed = request(url=server + "/json", limits=Limits(allowed_networks=("10.0.0.0/8", "127.0.0.1/32")))
    assert listed.status == "succeeded"


def test_allow_list_setting_is_parsed_and_checked():
    import pytest

    from nodedrop_rq.settings import Settings, SettingsError

    settings = Settings.from_env({"NODEDROP_HTTP_ALLOWED_NETWORKS": "10.1.2.0/24, 127.0.0.1"})
    assert Limits.from_settings(settings).allowed_networks == ("10.1.2.0/24", "127.0.0.1/32")
    with pytest.raises(SettingsError, match="NODEDROP_HTTP_ALLOWED_NETWORKS"):
        Settings.from_env({"NODEDROP_HTTP_ALLOWED_NETWORKS": "intranet"})
