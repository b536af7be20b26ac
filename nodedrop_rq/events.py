"""Execution events on the ``execution-events`` pub/sub channel (NodeDrop's channel and event names).

Every message is one JSON object: ``{"type", "executionId", "timestamp", "attempt", ...}`` where
``type`` is ``started``, ``node-started``, ``node-completed``, ``node-failed``, ``node-skipped``,
``retrying``, ``completed``, ``failed`` or ``cancelled``. Node events add ``nodeId``, ``nodeName``,
``nodeType`` and, when they end, ``durationMs``, ``outputCount`` and ``error``.
"""

from __future__ import annotations

import json
from typing import Any

from redis.client import Pipeline

from nodedrop_rq import keys
from nodedrop_rq.state import iso, utc_now

STARTED = "started"
RETRYING = "retrying"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"


def publish(pipeline: Pipeline, event_type: str, execution_id: str, **fields: Any) -> None:
    message = {"type": event_type, "executionId": execution_id, "timestamp": iso(utc_now())}
    message.update({k: v for k, v in fields.items() if v is not None})
    pipeline.publish(keys.EVENTS_CHANNEL, json.dumps(message, separators=(",", ":"), default=str))
