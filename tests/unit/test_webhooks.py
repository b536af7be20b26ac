"""The webhook trigger's configuration, checks, request item and answers, as pure functions (NodeDrop's
backend/src/services/TriggerService.ts, routes/webhook.ts, utils/webhookValidation.ts, hmacVerification.ts)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from nodedrop_rq.webhooks import checks, responses
from nodedrop_rq.webhooks.config import REDACTED, redacted, restore_secrets, webhook_configs
from nodedrop_rq.webhooks.requests import trigger_item
from nodedrop_rq.workflow import normalize_input, parse_workflow, run_workflow


def trigger(**parameters):
    return {"id": "hook", "type": "webhook-trigger", "name": "Hook",
            "parameters": {"webhookUrl": "3f1c-uuid", "httpMethod": "POST", **parameters}}


def document(*nodes):
    return {"name": "w", "nodes": list(nodes), "connections": []}


def config(**parameters):
    found, problems = webhook_configs(document(trigger(**parameters)))
    assert problems == []
    return found[0]


def test_the_path_is_the_webhook_id_and_the_custom_path_as_nodedrop_joins_them():
    assert config().path == "3f1c-uuid"
    assert config(webhookPath="/orders/new/").path == "3f1c-uuid/orders/new"
    assert config(httpMethod="GET").method == "GET"
    disabled = dict(trigger(), disabled=True)
    assert webhook_configs(document(disabled)) == ([], [])


def test_every_unservable_trigger_setting_is_a_problem_with_its_path():
    bad = trigger(webhookUrl="", authentication="c" + "a" * 25,
                  options={"hmacAlgorithm": "md5", "ipWhitelist": "10.0.0.0/8, nope", "hmacHeader": "bad header"})
    _, problems = webhook_configs({"nodes": [{"id": "x", "type": "set"}, bad]}, "workflow")
    paths = {p.path for p in problems}
    assert paths == {"workflow.nodes[1].parameters.webhookUrl", "workflow.nodes[1].parameters.authentication",
                     "workflow.nodes[1].parameters.options.hmacAlgorithm",
                     "workflow.nodes[1].parameters.options.ipWhitelist",
                     "workflow.nodes[1].parameters.options.hmacHeader"}
    assert all(p.node_id == "hook" for p in problems)
    _, problems = webhook_configs(document(trigger(webhookPath="users/:id"), trigger(authentication="basic")))
    assert {p.path for p in problems} == {"nodes[0].parameters.webhookPath", "nodes[1].parameters.username",
                                          "nodes[1].parameters.password"}
    _, problems = webhook_configs(document(trigger(), dict(trigger(), id="other")))
    assert [p.path for p in problems] == ["nodes[1].parameters.webhookUrl"]  # the same path and method twice


def test_basic_header_and_query_authentication():
    basic = config(authentication={"type": "basic", "settings": {"username": "ann", "password": "p:w"}}).auth
    good = "Basic " + base64.b64encode(b"ann:p:w").decode()
    assert checks.authenticated(basic, {"authorization": good}, {})
    for wrong in ("Basic " + base64.b64encode(b"ann:p").decode(), "Basic !!", "Bearer x", ""):
        assert not checks.authenticated(basic, {"authorization": wrong}, {})
    header = config(authentication="header", headerName="X-Key", expectedValue="k1").auth
    assert checks.authenticated(header, {"x-key": "k1"}, {})
    assert not checks.authenticated(header, {"x-key": "k2"}, {}) and not checks.authenticated(header, {}, {})
    query = config(authentication={"type": "query", "settings": {"queryParam": "token", "expectedValue": "t"}}).auth
    assert checks.authenticated(query, {}, {"token": "t"})
    assert not checks.authenticated(query, {}, {"token": ["t", "t"]})
    assert checks.authenticated(config(authentication="none").auth, {}, {})


def test_hmac_signature_of_the_body_bytes_with_or_without_an_algorithm_prefix():
    hook = config(options={"hmacSecret": "s3cret", "hmacAlgorithm": "sha512", "hmacHeader": "X-Sig"})
    body = b'{"a": 1}'
    digest = hmac.new(b"s3cret", body, hashlib.sha512).hexdigest()
    checks.check_signature(hook, {"x-sig": digest}, body)
    checks.check_signature(hook, {"x-sig": f"sha512={digest}"}, body)
    with pytest.raises(checks.Refused, match="Invalid HMAC signature") as refused:
        checks.check_signature(hook, {"x-sig": digest}, body + b" ")
    assert refused.value.status == 403
    with pytest.raises(checks.Refused, match="Missing signature header: X-Sig"):
        checks.check_signature(hook, {}, body)
    checks.check_signature(config(), {}, body)  # no secret, no check


def test_ip_allow_list_origins_bots_and_cors_headers():
    hook = config(options={"ipWhitelist": "10.0.0.0/8, 192.168.1.7, 2001:db8::/32", "ignoreBots": True,
                           "allowedOrigins": "https://app.example.com, *.example.org"})
    for ip in ("10.2.3.4", "192.168.1.7", "::ffff:10.0.0.1", "2001:db8::5"):
        assert checks.ip_allowed(hook, ip), ip
    for ip in ("127.0.0.1", "192.168.1.8", "unknown", ""):
        assert not checks.ip_allowed(hook, ip), ip
    with pytest.raises(checks.Refused, match="Origin not allowed"):
        checks.check_options(hook, {"origin": "https://evil.example.net"}, "10.0.0.1")
    with pytest.raises(checks.Refused, match="Bot"):
        checks.check_options(hook, {"user-agent": "Slackbot-LinkExpanding 1.0"}, "10.0.0.1")
    checks.check_options(hook, {"origin": "https://a.example.org"}, "10.0.0.1")
    assert checks.cors_headers(hook, "https://app.example.com")["Access-Control-Allow-Origin"] == \
        "https://app.example.com"
    assert "Access-Control-Allow-Origin" not in checks.cors_headers(hook, "https://evil.example.net")
    assert checks.cors_headers(config(options={"allowedOrigins": "*"}), None)["Access-Control-Allow-Origin"] == "*"
    assert checks.cors_headers(config(), "https://x") == {}  # as NodeDrop: no allowedOrigins, no CORS headers


def test_the_request_item_is_what_our_webhook_trigger_node_reads():
    parameters = {"options": {"includeData": ["headers", "query", "body", "path", "clientInfo", "webhookUrl"]},
                  "authentication": {"type": "basic", "settings": {"username": "u", "password": "pw"}}}
    hook = config(**parameters)
    item = trigger_item(hook, method="POST", path="/webhook/3f1c-uuid", query_string="a=1&a=2&b=",
                        headers={"content-type": "application/json", "user-agent": "curl/8",
                                 "authorization": "Basic dTpwdw=="},
                        body=b'{"order": 7}', client_ip="127.0.0.1", webhook_url="http://h/webhook/3f1c-uuid")
    workflow = parse_workflow(document(trigger(**parameters)))
    result = run_workflow(workflow, normalize_input(item))
    out = result.output[0]["json"]
    assert out["method"] == "POST" and out["body"] == {"order": 7} and out["query"] == {"a": ["1", "2"], "b": ""}
    assert out["path"] == "/webhook/3f1c-uuid?a=1&a=2&b=" and out["ip"] == "127.0.0.1"
    assert out["userAgent"] == "curl/8" and out["webhookUrl"] == "http://h/webhook/3f1c-uuid"
    assert "authorization" not in out["headers"]  # the credentials it was checked with are not kept
    form = trigger_item(config(options={"rawBody": True}), method="POST", path="/webhook/x", query_string="",
                        headers={"content-type": "application/x-www-form-urlencoded"}, body=b"x=1&y=2",
                        client_ip="::1", webhook_url="")
    assert form["json"]["body"] == {"x": "1", "y": "2"} and form["json"]["rawBody"] == "x=1&y=2"


def _body(answer):
    return json.loads(answer.body) if answer.body else None


def test_answers_for_each_response_mode_and_response_data_option():
    received = responses.received(config(), "e1", {})
    assert received.status == 200
    assert _body(received) | {"timestamp": None} == {"success": True, "message": responses.RECEIVED_MESSAGE,
                                                     "executionId": "e1", "testMode": False, "timestamp": None}
    state = {"id": "e1", "status": "succeeded", "output": [{"json": {"n": 1}}, {"json": {"n": 2}}]}
    assert _body(responses.finished(config(responseData="firstEntryJson"), state, {})) == {"n": 1}
    assert _body(responses.finished(config(responseData="allEntries"), state, {})) == [{"n": 1}, {"n": 2}]
    no_data = responses.finished(config(responseData="noData"), state, {})
    assert no_data.status == 200 and no_data.body == b""
    binary = {"id": "e1", "status": "succeeded",
              "output": [{"json": {}, "binary": {"data": {"data": base64.b64encode(b"PNG").decode(),
                                                          "mimeType": "image/png"}}}]}
    answer = responses.finished(config(responseData="firstEntryBinary"), binary, {})
    assert (answer.body, answer.media_type) == (b"PNG", "image/png")
    failed = responses.finished(config(), {"id": "e1", "status": "failed",
                                           "error": {"message": "boom", "nodeId": "n"}}, {})
    assert failed.status == 500 and _body(failed)["error"] == "boom" and _body(failed)["nodeId"] == "n"
    shaped = config(options={"propertyName": "data.items[1]", "responseHeaders": {"entries": [
        {"name": "X-Out", "value": "1"}]}, "responseContentType": "text/plain"})
    nested = {"id": "e1", "status": "succeeded", "output": [{"json": {"data": {"items": ["a", "b"]}}}]}
    answer = responses.finished(shaped, nested, {})
    assert (answer.body, answer.media_type, answer.headers["X-Out"]) == (b"b", "text/plain", "1")
    http = {"id": "e1", "status": "succeeded", "output": [{"json": {
        "_httpResponse": True, "statusCode": 201, "headers": {"X-A": "b"}, "body": {"ok": True}}}]}
    answer = responses.finished(config(), http, {})
    assert (answer.status, _body(answer), answer.headers["X-A"]) == (201, {"ok": True}, "b")
    assert responses.finished(config(options={"noResponseBody": True}), state, {}).body == b""
    error = responses.error(405, "nope", "p", allowed=["POST"])
    assert error.headers["Allow"] == "POST" and _body(error)["allowed_methods"] == ["POST"]


def test_secrets_are_redacted_and_a_redacted_document_put_back_keeps_them():
    stored = document(trigger(authentication={"type": "basic", "settings": {"username": "u", "password": "pw"}},
                              options={"hmacSecret": "hs"}))
    shown = redacted(json.loads(json.dumps(stored)))
    assert "pw" not in json.dumps(shown) and "hs" not in json.dumps(shown)
    assert shown["nodes"][0]["parameters"]["options"]["hmacSecret"] == REDACTED
    back = restore_secrets(json.loads(json.dumps(shown)), stored)
    assert back == stored
    changed = json.loads(json.dumps(shown))
    changed["nodes"][0]["parameters"]["options"]["hmacSecret"] = "new"
    assert restore_secrets(changed, stored)["nodes"][0]["parameters"]["options"]["hmacSecret"] == "new"
