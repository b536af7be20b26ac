"""Entry nodes: ``manual-trigger``, ``webhook-trigger``, ``schedule-trigger``.

Here an execution is submitted with its input items (for a webhook: the request data the API
received; for a schedule: whatever the scheduler passes); every trigger emits them. NodeDrop's
triggers wrap their data in trigger metadata instead; a trigger that gets no input emits one empty
item ``{"json": {}}`` so the nodes after it still run.
"""

from __future__ import annotations

import copy
import json

from nodedrop_rq.workflow.node_type import Inputs, NodeContext, NodeType, Outputs
from nodedrop_rq.workflow.params import any_value, boolean, number, obj, options, string


class _Trigger(NodeType):
    inputs = ()
    outputs = ("main",)
    trigger = True
    pure = True

    def default_items(self, ctx: NodeContext) -> list[dict]:
        return [{"json": {}}]

    def execute(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        items = copy.deepcopy(ctx.execution_input) if ctx.execution_input else self.default_items(ctx)
        return {"main": items}


class ManualTrigger(_Trigger):
    type = "manual-trigger"
    display_name = "Manual Trigger"
    description = "Starts the workflow with the execution input."
    params = {
        "description": string(),
        "allowCustomData": boolean(),
        "defaultData": any_value(description="JSON object used when no input is given (allowCustomData)"),
        "validateData": boolean(),
        "maxDataSize": number(minimum=0),
    }

    def default_items(self, ctx: NodeContext) -> list[dict]:
        # NodeDrop falls back to defaultData when custom data is allowed and none was passed.
        if ctx.raw_parameter("allowCustomData") is True:
            default = ctx.parameter("defaultData", "{}")
            if isinstance(default, str):
                try:
                    default = json.loads(default or "{}")
                except json.JSONDecodeError:
                    default = {}
            if isinstance(default, dict):
                return [{"json": default}]
        return [{"json": {}}]


class WebhookTrigger(_Trigger):
    type = "webhook-trigger"
    display_name = "Webhook Trigger"
    description = "Starts the workflow with the submitted request data."
    params = {
        "httpMethod": options("GET", "POST", "PUT", "DELETE", "PATCH"),
        "responseMode": options("onReceived", "lastNode"),
        "responseData": options("firstEntryJson", "firstEntryBinary", "allEntries", "noData"),
        "options": obj(),
    }


class ScheduleTrigger(_Trigger):
    type = "schedule-trigger"
    display_name = "Schedule Trigger"
    description = "Starts the workflow with the scheduler's input."
    params = {
        "scheduleMode": options("simple", "datetime", "cron"),
        "cronExpression": string(),
        "interval": string(),
        "timezone": string(),
    }
