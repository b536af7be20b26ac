"""``delay`` and ``wait``: pause, then pass the items on.

Both sleep in the worker, capped at ``Limits.max_delay_seconds`` (a longer request is shortened, not
refused, and the node's output says so). The sleep stops at once when the node's timeout passes.

- ``delay`` (NodeDrop's custom Delay node): ``amount`` in ``timeUnit`` (milliseconds, seconds, minutes,
  hours); each item gets ``delayInfo`` with the requested and actual delay.
- ``wait`` (NodeDrop's Wait node): ``mode`` ``afterInterval`` (``duration`` in ``unit``: seconds,
  minutes, hours, days) or ``atDateTime`` (``dateTime``, ISO 8601). ``onWebhook`` needs NodeDrop's
  resume webhooks and is refused at validation. Items pass unchanged; with none, one item
  ``{"_waitCompleted": true, ...}`` is emitted, as in NodeDrop.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from nodedrop_rq.workflow.limits import Limits
from nodedrop_rq.workflow.node_type import Inputs, NodeContext, NodeType, Outputs
from nodedrop_rq.workflow.nodes.items import as_object, data_of
from nodedrop_rq.workflow.params import Param, any_value, boolean, number, obj, options, string

_MS = {"milliseconds": 1, "seconds": 1000, "minutes": 60_000, "hours": 3_600_000, "days": 86_400_000}


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _amount(value: Any, what: str) -> float | int:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{what} must be a number of at least 0, got {value!r}")
    return value


def _capped_sleep(ctx: NodeContext, requested_ms: float) -> tuple[float, bool]:
    limit_ms = ctx.limits.max_delay_seconds * 1000
    wait_ms = min(requested_ms, limit_ms)
    ctx.sleep(wait_ms / 1000)
    return wait_ms, requested_ms > limit_ms


class DelayNode(NodeType):
    type = "delay"
    display_name = "Delay"
    description = "Wait, then pass the items on with delay information."
    pure = True
    params = {
        "amount": Param(("number",), minimum=0),
        "timeUnit": options("milliseconds", "seconds", "minutes", "hours"),
        "resumeOn": options("afterDelay"),
    }

    def execute(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        amount = _amount(ctx.parameter("amount", 1), "amount")
        unit = ctx.parameter("timeUnit", "seconds")
        if unit not in _MS or unit == "days":
            raise ValueError(f"unknown timeUnit {unit!r}")
        requested_ms = amount * _MS[unit]
        start = time.time()
        waited_ms, capped = _capped_sleep(ctx, requested_ms)
        end = time.time()
        actual_ms = (end - start) * 1000
        info = {
            "requestedDelay": {"amount": amount, "unit": unit, "milliseconds": requested_ms},
            "actualDelay": {"milliseconds": round(actual_ms), "seconds": f"{actual_ms / 1000:.2f}"},
            "startTime": _iso(start),
            "endTime": _iso(end),
        }
        if capped:
            info["cappedTo"] = {"milliseconds": round(waited_ms)}
        items = ctx.items or [{"json": {}}]
        return {"main": [{"json": {**as_object(data_of(i)), "delayInfo": copy.deepcopy(info)}} for i in items]}


def _parse_datetime(text: Any) -> datetime:
    if not isinstance(text, str) or not text:
        raise ValueError("Date & Time is required")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f'Invalid date format: "{text}"') from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


class WaitNode(NodeType):
    type = "wait"
    display_name = "Wait"
    description = "Pause for a duration or until a time, then pass the items on."
    pure = True
    params = {
        "mode": options("afterInterval", "atDateTime", "onWebhook"),
        "duration": Param(("number",), minimum=0),
        "unit": options("seconds", "minutes", "hours", "days"),
        "dateTime": string(),
        "maxWaitTime": number(),
        "maxWaitUnit": string(),
        "allowDataInResume": boolean(),
        "webhookAuthentication": any_value(),
        "webhookOptions": obj(),
    }

    def validate(self, parameters: Mapping[str, Any], limits: Limits) -> list[tuple[str, str]]:
        if parameters.get("mode") == "onWebhook":
            return [
                (
                    "mode",
                    "'onWebhook' waits for NodeDrop's resume webhook, which this engine does not provide; "
                    "use 'afterInterval' or 'atDateTime'",
                )
            ]
        if parameters.get("mode") == "atDateTime":
            text = parameters.get("dateTime")
            if isinstance(text, str) and "{{" not in text:
                try:
                    _parse_datetime(text)
                except ValueError as exc:
                    return [("dateTime", str(exc))]
        return []

    def execute(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        mode = ctx.parameter("mode", "afterInterval")
        if mode == "afterInterval":
            duration = _amount(ctx.parameter("duration", 5), "duration")
            unit = ctx.parameter("unit", "seconds")
            if unit not in ("seconds", "minutes", "hours", "days"):
                raise ValueError(f"unknown unit {unit!r}")
            requested_ms = duration * _MS[unit]
        elif mode == "atDateTime":
            target = _parse_datetime(ctx.parameter("dateTime", ""))
            requested_ms = max(0.0, (target.timestamp() - time.time()) * 1000)
        else:
            raise ValueError(f"Unknown wait mode: {mode}")
        waited_ms, _ = _capped_sleep(ctx, requested_ms)
        if not ctx.items:
            return {
                "main": [
                    {
                        "json": {
                            "_waitCompleted": True,
                            "_waitMode": mode,
                            "_waitDuration": round(waited_ms),
                            "_resumedAt": _iso(time.time()),
                        }
                    }
                ]
            }
        return {"main": list(ctx.items)}
