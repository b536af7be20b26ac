"""Stored workflows: a NodeDrop workflow kept under an id, versioned, and run by id or by webhook.

Redis layout (``keys.workflow``, ``keys.workflows``, ``keys.webhook``), none with a TTL:

* ``nodedrop:workflow:<id>``: hash ``id``, ``version``, ``hash``, ``document`` (the normalized bare workflow,
  JSON), ``name``, ``webhooks`` (JSON list of ``{path, method, nodeId, responseMode}``), ``createdAt``,
  ``updatedAt``;
* ``nodedrop:workflows``: sorted set of the ids, all scored 0, paged in id order with ZRANGEBYLEX;
* ``nodedrop:webhook:<path>``: hash method -> workflow id: the index a webhook call reads (one HGETALL
  whatever the number of workflows), changed in the same transaction as the workflow's hash.

Versions: ``version`` counts the changes of the document (1 for the first PUT) and ``hash`` is the SHA-256
of its canonical JSON. A PUT of the document already stored changes nothing and keeps both (it answers
``200`` with ``changed: false``), so retrying a PUT is safe; any other PUT is a new version.

An execution runs the version it was submitted with: its RQ job carries that document (or, once workflows
are stored by content hash, names that content), never "the current one", so updating a stored workflow
changes nothing for executions already queued or running. The execution's state records ``workflowId``
and ``workflowVersion``.

Writes are WATCHed transactions: a PUT that would take a webhook (path and method) of another workflow is
refused with :class:`WebhookTaken`, atomically with the check, so two concurrent PUTs cannot both take it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from redis.exceptions import WatchError

from nodedrop_rq import keys
from nodedrop_rq.errors import SubmitConflict
from nodedrop_rq.routing import QueueRouter
from nodedrop_rq.settings import Settings
from nodedrop_rq.state import iso, utc_now
from nodedrop_rq.submit import check_submission, submit_execution
from nodedrop_rq.webhooks.config import WebhookConfig, redacted, restore_secrets, webhook_configs
from nodedrop_rq.workflow import Problem, WorkflowInvalid

ID_PATTERN = r"^[A-Za-z0-9_.-]{1,128}$"
_ID = re.compile(ID_PATTERN)
MAX_LIMIT = 1000
MAX_TRIES = 20
_SUMMARY_FIELDS = ("id", "version", "hash", "name", "webhooks", "createdAt", "updatedAt")


class WorkflowNotFound(LookupError):
    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"no stored workflow {workflow_id!r}")
        self.workflow_id = workflow_id


class WebhookTaken(Exception):
    """The PUT would take a webhook another stored workflow answers."""

    def __init__(self, path: str, method: str, owner: str) -> None:
        super().__init__(f"{method} /webhook/{path} is the webhook of stored workflow {owner!r}")
        self.path, self.method, self.owner = path, method, owner


@dataclass(frozen=True)
class StoredWorkflow:
    id: str
    version: int
    hash: str
    name: str
    created_at: str
    updated_at: str
    webhooks: list[dict[str, Any]]
    document: dict[str, Any] | None = None
    changed: bool = field(default=True, compare=False)

    def to_dict(self, with_document: bool = True) -> dict[str, Any]:
        """The API's record. The document's webhook secrets are redacted: they are never answered."""
        out: dict[str, Any] = {"id": self.id, "version": self.version, "hash": self.hash, "name": self.name,
                               "createdAt": self.created_at, "updatedAt": self.updated_at,
                               "webhooks": self.webhooks}
        if with_document and self.document is not None:
            out["workflow"] = redacted(json.loads(json.dumps(self.document)))
        return out


def check_id(workflow_id: str) -> None:
    if not isinstance(workflow_id, str) or not _ID.fullmatch(workflow_id):
        raise WorkflowInvalid([Problem("id", "a workflow id is 1 to 128 letters, digits, '.', '_' or '-'")])


def content_hash(document: dict[str, Any]) -> str:
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else value


class WorkflowStore:
    """What the API, the CLI and the scheduler call: ``put``, ``get``, ``delete``, ``list``, ``webhook``."""

    def __init__(self, connection: Redis, settings: Settings, router: QueueRouter | None = None) -> None:
        self.connection = connection  # REDIS_URL's server: stored workflows and the webhook index live there
        self.settings = settings
        # Where executions go (EXECUTION_QUEUE_REDIS_URLS); without one, on this connection's server.
        self.router = router

    # -- writes ------------------------------------------------------------------------------------

    def validate(self, workflow_id: str, document: Any,
                 previous: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[WebhookConfig]]:
        """The normalized document and its webhooks; :class:`WorkflowInvalid` listing every problem (the
        workflow's own, then its webhook triggers')."""
        check_id(workflow_id)
        envelope = isinstance(document, dict) and "nodes" not in document and isinstance(document.get("workflow"), dict)
        bare = document["workflow"] if envelope else document
        _, hook_problems = webhook_configs(bare if isinstance(bare, dict) else {}, "workflow" if envelope else "")
        try:
            normalized, _ = check_submission(document, None, self.settings)
        except WorkflowInvalid as exc:
            raise WorkflowInvalid([*exc.problems, *hook_problems]) from None
        if hook_problems:
            raise WorkflowInvalid(hook_problems)
        normalized = restore_secrets(normalized, previous)
        configs, _ = webhook_configs(normalized)
        return normalized, configs

    def put(self, workflow_id: str, document: Any) -> StoredWorkflow:
        """Store ``document`` (validated first) as the workflow's next version; see the module's notes."""
        check_id(workflow_id)
        key = keys.workflow(workflow_id)
        for _ in range(MAX_TRIES):
            with self.connection.pipeline() as pipe:
                try:
                    pipe.watch(key)
                    old = {_text(k): _text(v) for k, v in pipe.hgetall(key).items()}
                    previous = json.loads(old["document"]) if old.get("document") else None
                    normalized, configs = self.validate(workflow_id, document, previous)
                    digest = content_hash(normalized)
                    if old and old.get("hash") == digest:
                        return self._record(old, changed=False)
                    new_hooks = [c.to_summary() for c in configs]
                    old_hooks = json.loads(old["webhooks"]) if old.get("webhooks") else []
                    hook_keys = {keys.webhook(h["path"]) for h in [*new_hooks, *old_hooks]}
                    if hook_keys:
                        pipe.watch(*hook_keys)
                    for hook in new_hooks:
                        owner = _text(pipe.hget(keys.webhook(hook["path"]), hook["method"]))
                        if owner and owner != workflow_id:
                            raise WebhookTaken(hook["path"], hook["method"], owner)
                    now = iso(utc_now())
                    fields = {"id": workflow_id, "version": int(old.get("version") or 0) + 1, "hash": digest,
                              "document": json.dumps(normalized, separators=(",", ":")),
                              "name": str(normalized.get("name") or ""), "webhooks": json.dumps(new_hooks),
                              "createdAt": old.get("createdAt") or now, "updatedAt": now}
                    pipe.multi()
                    pipe.hset(key, mapping=fields)
                    pipe.zadd(keys.workflows(), {workflow_id: 0})
                    kept = {(h["path"], h["method"]) for h in new_hooks}
                    for hook in old_hooks:
                        if (hook["path"], hook["method"]) not in kept:
                            pipe.hdel(keys.webhook(hook["path"]), hook["method"])
                    for hook in new_hooks:
                        pipe.hset(keys.webhook(hook["path"]), hook["method"], workflow_id)
                    pipe.execute()
                except WatchError:
                    continue
            return self._record({k: str(v) for k, v in fields.items()})
        raise SubmitConflict(f"gave up after {MAX_TRIES} concurrent changes to workflow {workflow_id}")

    def delete(self, workflow_id: str) -> bool:
        key = keys.workflow(workflow_id)
        for _ in range(MAX_TRIES):
            with self.connection.pipeline() as pipe:
                try:
                    pipe.watch(key)
                    hooks_text = pipe.hget(key, "webhooks")
                    if not pipe.exists(key):
                        return False
                    hooks = json.loads(_text(hooks_text) or "[]")
                    pipe.multi()
                    pipe.delete(key)
                    pipe.zrem(keys.workflows(), workflow_id)
                    for hook in hooks:
                        # Only our own entry: a webhook taken over since is another workflow's.
                        pipe.hdel(keys.webhook(hook["path"]), hook["method"])
                    pipe.execute()
                    return True
                except WatchError:
                    continue
        raise SubmitConflict(f"gave up after {MAX_TRIES} concurrent changes to workflow {workflow_id}")

    # -- reads -------------------------------------------------------------------------------------

    def get(self, workflow_id: str) -> StoredWorkflow | None:
        if not _ID.fullmatch(workflow_id or ""):
            return None
        raw = {_text(k): _text(v) for k, v in self.connection.hgetall(keys.workflow(workflow_id)).items()}
        return self._record(raw) if raw.get("document") else None

    def list(self, limit: int = 50, cursor: str | None = None) -> tuple[list[StoredWorkflow], str | None]:
        """A page of stored workflows in id order (without their documents), and the cursor of the next
        page (None on the last): the last id of this page, so workflows added meanwhile shift no page."""
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be 1 to {MAX_LIMIT}")
        if cursor is not None and not _ID.fullmatch(cursor):
            raise ValueError("cursor is not a nextCursor returned by this API")
        ids = [_text(i) for i in self.connection.zrangebylex(keys.workflows(), f"({cursor}" if cursor else "-", "+",
                                                               start=0, num=limit + 1)]
        more, ids = len(ids) > limit, ids[:limit]
        with self.connection.pipeline(transaction=False) as pipe:
            for workflow_id in ids:
                pipe.hmget(keys.workflow(workflow_id), *_SUMMARY_FIELDS)
            rows = pipe.execute()
        found = [self._record(dict(zip(_SUMMARY_FIELDS, map(_text, row), strict=True))) for row in rows if row[0]]
        return found, (ids[-1] if more and ids else None)

    def webhook_owners(self, path: str) -> dict[str, str]:
        """Method -> workflow id of the webhook at ``/webhook/<path>`` (empty when there is none)."""
        return {_text(k): _text(v) for k, v in self.connection.hgetall(keys.webhook(path)).items()}

    def current(self, workflow_id: str) -> tuple[dict[str, Any], int, str] | None:
        """The document, version and hash of the current version, read together (one HMGET)."""
        if not _ID.fullmatch(workflow_id or ""):
            return None
        document, version, digest = self.connection.hmget(keys.workflow(workflow_id), "document", "version", "hash")
        if not document:
            return None
        return json.loads(document), int(version or 0), _text(digest)

    # -- running -------------------------------------------------------------------------------------

    def run(self, workflow_id: str, input: Any = None, *, idempotency_key: str | None = None,  # noqa: A002
            queue: str | None = None, router: QueueRouter | None = None) -> str:
        """Submit an execution of the workflow's current version (recorded on it); returns its id.
        :class:`WorkflowNotFound` when there is no such workflow."""
        current = self.current(workflow_id)
        if current is None:
            raise WorkflowNotFound(workflow_id)
        document, version, _ = current
        router = router or self.router
        return submit_execution(document, input, idempotency_key=idempotency_key,
                                connection=None if router is not None else self.connection, router=router,
                                settings=self.settings, queue=queue, workflow_id=workflow_id,
                                workflow_version=version)

    @staticmethod
    def _record(raw: dict[str, str], changed: bool = True) -> StoredWorkflow:
        return StoredWorkflow(id=raw["id"], version=int(raw.get("version") or 0), hash=raw.get("hash", ""),
                              name=raw.get("name", ""), created_at=raw.get("createdAt", ""),
                              updated_at=raw.get("updatedAt", ""), webhooks=json.loads(raw.get("webhooks") or "[]"),
                              document=json.loads(raw["document"]) if raw.get("document") else None,
                              changed=changed)
