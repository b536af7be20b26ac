"""What a stored workflow's ``webhook-trigger`` nodes configure, read and checked when it is stored.

The webhook path follows TriggerService.activateWebhookTrigger: ``parameters.webhookUrl`` holds the
webhook id (NodeDrop's editor fills it with a UUID; ``webhookId`` is accepted as another name for it), an
optional ``parameters.webhookPath`` is appended (``<id>/<path>``), and the trigger answers at
``/webhook/<that path>``. The method is ``parameters.httpMethod`` (NodeDrop's default ``POST``).

Authentication (TriggerService.handleWebhookTrigger) comes in NodeDrop's two inline forms: an object
``{"type": "basic" | "header" | "query" | "none", "settings": {...}}``, or the type as a string with the
settings among the parameters (``username``, ``password``, ``headerName``, ``expectedValue``,
``queryParam``). NodeDrop's third form, a credential id, names its credential store, which does not exist
here: it is refused when the workflow is stored, as is an unknown type or a type without its settings.
(NodeDrop lets such a request through when the credential is not found or the type is unknown; a webhook
that silently lost its authentication is what this refuses to store.)

Everything here is checked once, when the workflow is stored (``PUT /api/workflows/{id}``): a problem is
reported with its path into the document, like any other validation problem.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from nodedrop_rq.workflow import Problem
from nodedrop_rq.workflow.problems import join_path

TRIGGER_TYPE = "webhook-trigger"
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
RESPONSE_MODES = ("onReceived", "lastNode")
RESPONSE_DATA = ("firstEntryJson", "firstEntryBinary", "allEntries", "noData")
HMAC_ALGORITHMS = ("sha1", "sha256", "sha512")
DEFAULT_HMAC_HEADER = "X-Webhook-Signature"
MAX_PATH = 200
_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

# Parameters holding secrets, answered as REDACTED by GET /api/workflows/{id} (see redacted()).
SECRET_OPTIONS = ("hmacSecret",)
SECRET_PARAMETERS = ("password", "expectedValue")
REDACTED = "__redacted__"


@dataclass(frozen=True)
class Auth:
    type: str  # basic | header | query
    username: str = ""
    password: str = ""
    name: str = ""  # the header or query parameter
    expected: str = ""


@dataclass(frozen=True)
class WebhookConfig:
    node_id: str
    path: str
    method: str
    response_mode: str = "onReceived"
    response_data: str = "firstEntryJson"
    options: dict[str, Any] = field(default_factory=dict)
    auth: Auth | None = None

    @property
    def hmac_secret(self) -> str:
        secret = self.options.get("hmacSecret")
        return secret if isinstance(secret, str) else ""

    @property
    def ip_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(entry, strict=False) for entry in split_list(self.options.get("ipWhitelist"))]

    def to_summary(self) -> dict[str, Any]:
        return {"path": self.path, "method": self.method, "nodeId": self.node_id, "responseMode": self.response_mode}


def split_list(value: Any) -> list[str]:
    """NodeDrop's comma-separated option lists (``ipWhitelist``, ``allowedOrigins``)."""
    if not isinstance(value, str):
        return []
    return [part.strip() for part in value.split(",") if part.strip()]


def normalize_path(text: str) -> str:
    """A webhook path as the index keys it: without leading or trailing slashes (as NodeDrop's match)."""
    return text.strip().strip("/")


def webhook_configs(document: dict[str, Any], base: str = "") -> tuple[list[WebhookConfig], list[Problem]]:
    """The webhooks of the enabled ``webhook-trigger`` nodes of a bare workflow document, and the problems
    that stop one from being served (paths point into the document; ``base`` is ``workflow`` for an export
    envelope). Read from the document itself, so that a document with other problems still gets these."""
    configs: list[WebhookConfig] = []
    problems: list[Problem] = []
    seen: dict[tuple[str, str], str] = {}
    nodes = document.get("nodes") if isinstance(document, dict) else None
    for index, node in enumerate(nodes if isinstance(nodes, list) else []):
        if not isinstance(node, dict) or node.get("type") != TRIGGER_TYPE or node.get("disabled") is True:
            continue
        params = node.get("parameters") if isinstance(node.get("parameters"), dict) else {}
        node_id = str(node.get("id", ""))
        at = join_path(join_path(join_path(base, "nodes"), index), "parameters")
        found, node_problems = _config(node_id, params, at)
        problems += node_problems
        if found is None:
            continue
        key = (found.path, found.method)
        if key in seen:
            problems.append(Problem(join_path(at, "webhookUrl"), f"{found.method} /webhook/{found.path} is also "
                                    f"the webhook of node {seen[key]!r}", node_id))
            continue
        seen[key] = node_id
        configs.append(found)
    return configs, problems


def _config(node_id: str, params: dict[str, Any], at: str) -> tuple[WebhookConfig | None, list[Problem]]:
    problems: list[Problem] = []

    def problem(name: str, message: str) -> None:
        problems.append(Problem(join_path(at, name), message, node_id))

    webhook_id = params.get("webhookUrl", params.get("webhookId"))
    custom = params.get("webhookPath", "")
    path = ""
    if not isinstance(webhook_id, str) or not webhook_id.strip():
        problem("webhookUrl", "a stored workflow's webhook trigger needs a webhook id (NodeDrop's editor writes a "
                              "UUID here); it answers at /webhook/<webhookUrl>[/<webhookPath>]")
    elif custom is not None and not isinstance(custom, str):
        problem("webhookPath", "must be a string")
    else:
        path = "/".join(p for p in (normalize_path(webhook_id), normalize_path(custom or "")) if p)
        segments = path.split("/")
        if any(s.startswith(":") for s in segments):
            problem("webhookPath", "path parameters (:name) are not supported here; use a fixed path")
            path = ""
        elif len(path) > MAX_PATH or not all(_SEGMENT.fullmatch(s) for s in segments):
            problem("webhookUrl", f"the webhook path {path[:80]!r} must be at most {MAX_PATH} characters of "
                                  "letters, digits, '.', '_', '~' or '-', in segments separated by '/'")
            path = ""
    method = params.get("httpMethod", "POST")
    if method not in METHODS:  # the node type's own validation reports it; nothing to serve
        path = ""
    options = params.get("options") or {}
    if not isinstance(options, dict):
        options = {}
    problems += _option_problems(options, node_id, join_path(at, "options"))
    auth = _auth(params, node_id, at, problems)
    if problems or not path:
        return None, problems
    return WebhookConfig(node_id=node_id, path=path, method=str(method),
                         response_mode=str(params.get("responseMode") or "onReceived"),
                         response_data=str(params.get("responseData") or "firstEntryJson"),
                         options=options, auth=auth), problems


def _option_problems(options: dict[str, Any], node_id: str, at: str) -> list[Problem]:
    problems: list[Problem] = []

    def problem(name: str, message: str) -> None:
        problems.append(Problem(join_path(at, name), message, node_id))

    for name in ("hmacSecret", "hmacHeader", "ipWhitelist", "allowedOrigins", "propertyName", "customContentType",
                 "responseContentType"):
        if name in options and not isinstance(options[name], str):
            problem(name, "must be a string")
    algorithm = options.get("hmacAlgorithm", "sha256")
    if algorithm not in HMAC_ALGORITHMS:
        problem("hmacAlgorithm", f"must be one of {', '.join(HMAC_ALGORITHMS)}")
    header = options.get("hmacHeader")
    if isinstance(header, str) and header and not _HEADER_NAME.fullmatch(header):
        problem("hmacHeader", "must be an HTTP header name")
    for entry in split_list(options.get("ipWhitelist")):
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            problem("ipWhitelist", f"{entry[:60]!r} is not an IP address or CIDR range")
    entries = (options.get("responseHeaders") or {}).get("entries", []) \
        if isinstance(options.get("responseHeaders") or {}, dict) else None
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("name", ""), str) and isinstance(e.get("value", ""), str)
            and (not e.get("name") or _HEADER_NAME.fullmatch(e["name"])) for e in entries):
        problem("responseHeaders", 'must be {"entries": [{"name": <header name>, "value": <text>}, ...]}')
    return problems


def _auth(params: dict[str, Any], node_id: str, at: str, problems: list[Problem]) -> Auth | None:
    raw = params.get("authentication")
    if raw in (None, "", "none"):
        return None
    where = join_path(at, "authentication")
    if isinstance(raw, dict):
        kind, settings, prefix = raw.get("type"), raw.get("settings") or {}, join_path(where, "settings")
        if not isinstance(settings, dict):
            problems.append(Problem(prefix, "must be an object", node_id))
            return None
    elif raw in ("basic", "header", "query"):
        kind, settings, prefix = raw, params, at
    else:
        problems.append(Problem(where, 'credential references are not supported here (there is no credential '
                                       'store); give the authentication inline: {"type": "basic", "settings": '
                                       '{"username": ..., "password": ...}}, or "header" (headerName, '
                                       'expectedValue) or "query" (queryParam, expectedValue)', node_id))
        return None
    if kind == "none":
        return None
    required = {"basic": ("username", "password"), "header": ("headerName", "expectedValue"),
                "query": ("queryParam", "expectedValue")}.get(kind) if isinstance(kind, str) else None
    if required is None:
        problems.append(Problem(join_path(where, "type"), "must be basic, header, query or none", node_id))
        return None
    missing = [name for name in required if not isinstance(settings.get(name), str) or not settings.get(name)]
    for name in missing:
        problems.append(Problem(join_path(prefix, name), f"{kind} authentication needs a non-empty string",
                                node_id))
    if missing:
        return None
    if kind == "header" and not _HEADER_NAME.fullmatch(settings["headerName"]):
        problems.append(Problem(join_path(prefix, "headerName"), "must be an HTTP header name", node_id))
        return None
    if kind == "basic":
        return Auth("basic", username=settings["username"], password=settings["password"])
    name = settings["headerName"] if kind == "header" else settings["queryParam"]
    return Auth(kind, name=name, expected=settings["expectedValue"])


def _node_secrets(node: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """(place, key) -> the dict holding that secret, for one webhook trigger node of a document."""
    if not isinstance(node, dict) or node.get("type") != TRIGGER_TYPE or not isinstance(node.get("parameters"), dict):
        return {}
    params = node["parameters"]
    spots = {("parameters", k): params for k in SECRET_PARAMETERS if k in params}
    auth = params.get("authentication")
    if isinstance(auth, dict) and isinstance(auth.get("settings"), dict):
        spots.update({("authentication", k): auth["settings"] for k in SECRET_PARAMETERS if k in auth["settings"]})
    if isinstance(params.get("options"), dict):
        spots.update({("options", k): params["options"] for k in SECRET_OPTIONS if k in params["options"]})
    return spots


def redacted(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (a bare workflow, changed in place and returned) with every webhook secret (HMAC secret,
    passwords, expected header and query values) replaced by :data:`REDACTED`."""
    for node in document.get("nodes") or []:
        for (_, key), container in _node_secrets(node).items():
            if container[key]:
                container[key] = REDACTED
    return document


def restore_secrets(document: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """A document read back with GET (secrets redacted) and PUT again keeps the stored secrets: each
    :data:`REDACTED` value takes the previous version's value at the same node and place."""
    if previous is None:
        return document
    before = {n.get("id"): _node_secrets(n) for n in previous.get("nodes") or [] if isinstance(n, dict)}
    for node in document.get("nodes") or []:
        stale = before.get(node.get("id")) if isinstance(node, dict) else None
        if not stale:
            continue
        for place, container in _node_secrets(node).items():
            if container[place[1]] == REDACTED and place in stale:
                container[place[1]] = stale[place][place[1]]
    return document
