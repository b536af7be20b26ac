"""The built-in node types, one module per node or small family."""

from __future__ import annotations

from nodedrop_rq.workflow.nodes.code import CodeNode
from nodedrop_rq.workflow.nodes.function import FunctionNode
from nodedrop_rq.workflow.nodes.http_request import HttpRequestNode
from nodedrop_rq.workflow.nodes.if_else import IfElseNode
from nodedrop_rq.workflow.nodes.json_data import JsonNode
from nodedrop_rq.workflow.nodes.loop import LoopNode
from nodedrop_rq.workflow.nodes.merge import MergeNode
from nodedrop_rq.workflow.nodes.passthrough import DataPreviewNode
from nodedrop_rq.workflow.nodes.set_fields import SetNode
from nodedrop_rq.workflow.nodes.split import SplitNode
from nodedrop_rq.workflow.nodes.stop_and_error import StopAndErrorNode
from nodedrop_rq.workflow.nodes.switch import SwitchNode
from nodedrop_rq.workflow.nodes.timing import DelayNode, WaitNode
from nodedrop_rq.workflow.nodes.triggers import ManualTrigger, ScheduleTrigger, WebhookTrigger

BUILTIN_NODE_TYPES = (
    ManualTrigger,
    WebhookTrigger,
    ScheduleTrigger,
    SetNode,
    IfElseNode,
    SwitchNode,
    MergeNode,
    JsonNode,
    SplitNode,
    LoopNode,
    DelayNode,
    WaitNode,
    HttpRequestNode,
    DataPreviewNode,
    StopAndErrorNode,
    FunctionNode,
    CodeNode,
)

__all__ = ["BUILTIN_NODE_TYPES"]
