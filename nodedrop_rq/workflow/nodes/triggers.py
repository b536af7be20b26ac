"""Entry nodes: ``manual-trigger``, ``webhook-trigger``, ``schedule-trigger``, each emitting the one item
NodeDrop's node builds (ManualTrigger.node.ts, WebhookTrigger.node.ts, ScheduleTrigger.node.ts).

The execution input plays the part of NodeDrop's trigger data: its first item is the manual trigger's
custom data (only with ``allowCustomData``) and the webhook trigger's request (``method``, ``headers``,
``query``, ``body``, ``path``, ``params``, ``ip``, ``userAgent``, ``webhookUrl``); the schedule trigger
ignores it, as NodeDrop's does.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from nodedrop_rq.workflow.expressions import sanitize
from nodedrop_rq.workflow.js.values import stringify, to_text, truthy
from nodedrop_rq.workflow.node_type import Inputs, NodeContext, NodeType, Outputs
from nodedrop_rq.workflow.nodes.items import data_of
from nodedrop_rq.workflow.params import any_value, boolean, number, obj, options, string


def now_iso() -> str:
    """``new Date().toISOString()``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Trigger(NodeType):
    inputs = ()
    outputs = ("main",)
    trigger = True
    pure = True

    @staticmethod
    def trigger_data(ctx: NodeContext) -> Any:
        return data_of(ctx.execution_input[0]) if ctx.execution_input else None


class ManualTrigger(_Trigger):
    type = "manual-trigger"
    display_name = "Manual Trigger"
    description = "Starts the workflow; with allowCustomData, the input becomes customData."
    params = {
        "description": string(),
        "allowCustomData": boolean(),
        "defaultData": any_value(),
        "validateData": boolean(),
        "maxDataSize": number(minimum=0),
    }

    def execute(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        allow = ctx.parameter("allowCustomData", False)
        output: dict[str, Any] = {
            "triggeredAt": now_iso(),
            "triggerType": "manual",
            "description": ctx.parameter("description", "") or "Manual workflow trigger",
        }
        if truthy(allow):
            output["customData"] = self._custom_data(ctx)
        output["metadata"] = {"timestamp": output["triggeredAt"], "source": "manual"}
        return {"main": [{"json": output}]}

    def _custom_data(self, ctx: NodeContext) -> Any:
        data = self.trigger_data(ctx)
        if not isinstance(data, (dict, list)):
            default = ctx.parameter("defaultData", "{}")
            try:
                data = json.loads(default or "{}") if isinstance(default, str) else default
            except json.JSONDecodeError:
                data = {}
        # NodeService.executeNode removes __proto__/constructor/prototype keys from the input before the
        # trigger sees it, so the trigger's own checks for them never fire there either.
        data = sanitize(data)
        max_size = ctx.parameter("maxDataSize", 1_048_576)
        size = len(stringify(data))
        if truthy(ctx.parameter("validateData", True)) and isinstance(max_size, (int, float)) and size > max_size:
            raise ValueError(f"Trigger data validation failed: Data size {size} bytes exceeds maximum "
                             f"{to_text(max_size)} bytes")
        return data


class WebhookTrigger(_Trigger):
    type = "webhook-trigger"
    display_name = "Webhook Trigger"
    description = "Starts the workflow with the request data (method, headers, query, body, path)."
    params = {
        "httpMethod": options("GET", "POST", "PUT", "DELETE", "PATCH"),
        "responseMode": options("onReceived", "lastNode"),
        "responseData": options("firstEntryJson", "firstEntryBinary", "allEntries", "noData"),
        "options": obj(),
    }

    def execute(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        raw = ctx.execution_input[0] if ctx.execution_input else {}
        request = raw.get("json", raw) if isinstance(raw, dict) else {}
        request = request if isinstance(request, dict) else {}
        opts = ctx.parameter("options", {}) or {}
        include = opts.get("includeData", ["headers", "query", "body", "path"]) if isinstance(opts, dict) else []
        include = include if isinstance(include, (list, str)) else []
        output: dict[str, Any] = {"method": request.get("method") or "GET", "timestamp": now_iso()}
        if isinstance(request.get("params"), dict) and request["params"]:
            output["params"] = request["params"]
        if "headers" in include:
            headers = request.get("headers") or {}
            wanted = [h.strip().lower() for h in str(opts.get("headersToInclude") or "").split(",") if h.strip()]
            output["headers"] = {h: headers[h] for h in wanted if truthy(headers.get(h))} if wanted else headers
        if "query" in include:
            output["query"] = request.get("query") or {}
        if "body" in include:
            raw_body = opts.get("rawBody") and request.get("rawBody")
            output["body"] = raw_body if raw_body else (request.get("body") or {})
        if "path" in include:
            output["path"] = request.get("path") or "/"
        if "clientInfo" in include:
            for field in ("ip", "userAgent"):
                if request.get(field):
                    output[field] = request[field]
        if "webhookUrl" in include and request.get("webhookUrl"):
            output["webhookUrl"] = request["webhookUrl"]
        item: dict[str, Any] = {"json": output}
        binary = (raw.get("binary") if isinstance(raw, dict) else None) or request.get("binary")
        if binary:
            item["binary"] = {opts.get("binaryProperty") or "data": binary}
        return {"main": [item]}


_SIMPLE_CRON = {
    "minute": "* * * * *", "2minutes": "*/2 * * * *", "5minutes": "*/5 * * * *",
    "10minutes": "*/10 * * * *", "15minutes": "*/15 * * * *", "30minutes": "*/30 * * * *",
    "hour": "0 * * * *", "2hours": "0 */2 * * *", "3hours": "0 */3 * * *", "6hours": "0 */6 * * *",
    "12hours": "0 */12 * * *",
}


def simple_cron(interval: Any, time_of_day: Any, day_of_week: Any, day_of_month: Any, weekdays: Any) -> str:
    """ScheduleTrigger.node.ts convertSimpleToCron."""
    hour, minute = (str(time_of_day).split(":") + ["0"])[:2] if time_of_day else ("0", "0")
    if interval in _SIMPLE_CRON:
        return _SIMPLE_CRON[interval]
    if interval == "day":
        return f"{minute} {hour} * * 1-5" if weekdays else f"{minute} {hour} * * *"
    if interval == "week":
        return f"{minute} {hour} * * {day_of_week or '1'}"
    if interval == "month":
        return f"{minute} {hour} {day_of_month or '1'} * *"
    return "0 0 * * *"


def datetime_cron(start: Any, repeat: Any, interval: Any) -> str:
    """ScheduleTrigger.node.ts convertDateTimeToCron, in UTC (NodeDrop uses the server's zone)."""
    try:
        moment = datetime.fromisoformat(str(start).replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError:
        return "NaN NaN NaN NaN *" if not repeat else "NaN NaN * * *"
    minute, hour, day, month = moment.minute, moment.hour, moment.day, moment.month
    weekday = (moment.weekday() + 1) % 7
    if not repeat:
        return f"{minute} {hour} {day} {month} *"
    return {"hour": f"{minute} * * * *", "week": f"{minute} {hour} * * {weekday}",
            "month": f"{minute} {hour} {day} * *"}.get(interval, f"{minute} {hour} * * *")


class ScheduleTrigger(_Trigger):
    type = "schedule-trigger"
    display_name = "Schedule Trigger"
    description = "Starts the workflow on a schedule; emits the schedule's description."
    params = {
        "scheduleMode": options("simple", "datetime", "cron"),
        "cronExpression": string(),
        "interval": string(),
        "timezone": string(),
    }

    def execute(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        p = ctx.parameter
        mode = p("scheduleMode", "simple")
        info: dict[str, Any] = {}
        if mode == "cron":
            cron = p("cronExpression", "0 0 * * *")
        elif mode == "simple":
            info = {"interval": p("interval", "hour"), "timeOfDay": p("timeOfDay", "00:00"),
                    "dayOfWeek": p("dayOfWeek", "1"), "dayOfMonth": p("dayOfMonth", 1),
                    "weekdaysOnly": p("weekdaysOnly", False)}
            cron = simple_cron(*info.values())
        elif mode == "datetime":
            info = {"startDate": p("startDate", ""), "repeat": p("repeat", False),
                    "repeatInterval": p("repeatInterval", "day"), "endDate": p("endDate", "")}
            cron = datetime_cron(info["startDate"], info["repeat"], info["repeatInterval"])
        else:
            cron = "0 0 * * *"
        output = {"scheduledAt": now_iso(), "scheduleMode": mode, "cronExpression": cron,
                  "timezone": p("timezone", "UTC"), "description": p("description", ""),
                  "scheduleInfo": info, "triggerType": "schedule"}
        return {"main": [{"json": output}]}
