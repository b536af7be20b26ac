"""Workflow documents, stored once per distinct document under the SHA-256 of their canonical JSON.


Executions of the same workflow share one ``nodedrop:document:<digest>`` string; each execution's state
names the digest (field ``workflow``). A document is set only if absent (NX) and its TTL is only ever
raised, to what the longest-lived execution using it needs: an execution that may still run needs it for
``EXECUTION_STATE_TTL`` (waiting, running, between retries) plus ``EXECUTION_FAILURE_TTL`` (failed, and
requeued from there); a failed one for ``EXECUTION_FAILURE_TTL``. Every transition that leaves an
execution waiting or failed raises the TTL again, so a document never expires under a job that can
still run. Documents are immutable, so each process keeps the ones it read (:func:`load`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any

from redis import Redis
from redis.client import Pipeline

from nodedrop_rq import keys
from nodedrop_rq.execution import scripts, status
from nodedrop_rq.settings import Settings

# Documents kept in memory per process (they are at most WORKFLOW_MAX_DOCUMENT_BYTES each).
CACHED_DOCUMENTS = 64


class DocumentMissing(LookupError):
    """The workflow document an execution names is not in Redis (it cannot be run)."""


def canonical(document: dict[str, Any]) -> str:
    """The one JSON text of a document: sorted keys, no spaces, ASCII."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False)


def digest_of(text: str) -> str:
    """SHA-256 of the text, base64url without padding (43 characters)."""
    return base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).decode().rstrip("=")


def lifetime(settings: Settings) -> int:
    """Seconds a document must live from a submit (or requeue): the execution may wait or run for the
    state TTL, then stay failed for the failure TTL, and be requeued from there."""
    return settings.state_ttl + settings.failure_ttl


def needed_for(settings: Settings, target: str) -> int | None:
    """Seconds an execution that just moved to ``target`` may still need its document; None when it will
    not run again (succeeded, cancelled)."""
    if target in status.ACTIVE:
        return lifetime(settings)
    if target == status.FAILED:
        return settings.failure_ttl
    return None


def keep(pipe: Pipeline, text: str, settings: Settings) -> str:
    """Add to ``pipe`` the writes that store the document ``text`` (or keep an existing copy long enough
    for one more execution); returns its digest."""
    digest = digest_of(text)
    pipe.eval(scripts.KEEP_DOCUMENT, 1, keys.document(digest), text, lifetime(settings))
    return digest


_cache: OrderedDict[str, str] = OrderedDict()
_cache_lock = threading.Lock()


def load(connection: Redis, digest: str) -> dict[str, Any]:
    """The document stored under ``digest`` (from this process's cache when it was read before)."""
    with _cache_lock:
        text = _cache.get(digest)
        if text is not None:
            _cache.move_to_end(digest)
    if text is None:
        raw = connection.get(keys.document(digest))
        if raw is None:
            raise DocumentMissing(f"workflow document {digest} is no longer stored")
        text = raw.decode() if isinstance(raw, bytes) else raw
        if digest_of(text) != digest:
            raise DocumentMissing(f"workflow document {digest} does not match its digest")
        with _cache_lock:
            _cache[digest] = text
            while len(_cache) > CACHED_DOCUMENTS:
                _cache.popitem(last=False)
    return json.loads(text)
