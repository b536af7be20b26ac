"""``data-preview``: NodeDrop shows the data on the canvas and passes it on unchanged; so does this."""

from __future__ import annotations

from nodedrop_rq.workflow.node_type import Inputs, NodeContext, NodeType, Outputs
from nodedrop_rq.workflow.params import boolean, number, options


class DataPreviewNode(NodeType):
    type = "data-preview"
    display_name = "Data Preview"
    description = "Pass the items through unchanged (the preview is a UI feature)."
    pure = True
    params = {
        "previewSource": options("all", "first", "last"),
        "previewFormat": options("json", "json-compact", "text", "table"),
        "maxLines": number(),
        "showTimestamp": boolean(),
        "autoCollapse": boolean(),
        "appendMode": boolean(),
        "maxHistoryItems": number(),
    }

    def execute(self, ctx: NodeContext, inputs: Inputs) -> Outputs:
        return {"main": list(ctx.items)}
