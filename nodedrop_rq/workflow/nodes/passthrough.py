"""``data-preview``: one item describing the input, as NodeDrop's DataPreview.node.ts outputs it.

The item is ``{id, preview, format, lineCount, timestamp, metadata: {inputItems, previewedItems,
previewSource, dataType, isArray, truncated}, appendMode, autoCollapse}``; ``preview`` is the selected
items (``previewSource`` all/first/last) as pretty JSON, compact JSON, ``String()`` text or an ASCII table,
cut to ``maxLines``. With ``appendMode`` the item also carries ``previewHistory`` (this run's preview; the
history NodeDrop keeps across loop iterations does not outlive a node run here).
"""

from __future__ import annotations

import json
import time
from typing import Any

from nodedrop_rq.workflow.js.values import plain, stringify, to_text, truthy
from nodedrop_rq.workflow.node_type import Inputs, NodeContext, NodeType, Outputs
from nodedrop_rq.workflow.nodes.triggers import now_iso
from nodedrop_rq.workflow.params import boolean, number, options


def _text(value: Any) -> str:
    """``String(value)`` as JavaScript prints arrays (joined by commas) and objects."""
    if isinstance(value, list):
        return ",".join("" if v is None else _text(v) for v in value)
    if isinstance(value, dict):
        return "[object Object]"
    return to_text(value)


def _table(rows: list[Any]) -> str:
    if not rows:
        return "Empty array"
    keys = list(dict.fromkeys(k for row in rows if isinstance(row, dict) for k in row))
    if not keys:
        return "No object properties to display"

    def cell(row: Any, key: str) -> str:
        value = row.get(key) if isinstance(row, dict) else None
        return "" if value is None else _text(value)

    widths = {k: min(max([len(k)] + [len(cell(r, k)) for r in rows]), 50) for k in keys}
    separator = "+" + "+".join("-" * (widths[k] + 2) for k in keys) + "+"
    lines = [separator, "| " + " | ".join(k.ljust(widths[k]) for k in keys) + " |", separator]
    for row in rows:
        cells = []
        for k in keys:
            text = cell(row, k)
            cells.append((text[:47] + "..." if len(text) > 50 else text).ljust(widths[k]))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(separator)
    return "\n".join(lines)


class DataPreviewNode(NodeType):
    type = "data-preview"
    display_name = "Data Preview"
    description = "Output one record previewing the input items."
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
        source = ctx.parameter("previewSource", "all")
        fmt = ctx.parameter("previewFormat", "json")
        max_lines = ctx.parameter("maxLines", 100)
        # DataPreview takes `item?.json || item`: a falsy json (0, "", false) shows the whole item.
        data = [item["json"] if truthy(item.get("json")) else item for item in ctx.items]
        chosen = data[:1] if source == "first" else data[-1:] if source == "last" else data
        if fmt == "json-compact":
            text = stringify(chosen)
        elif fmt == "text":
            text = _text(chosen)
        elif fmt == "table":
            text = _table(chosen)
        else:
            text = json.dumps(plain(chosen), indent=2, ensure_ascii=False)
        lines = text.split("\n")
        line_count = len(lines)
        if isinstance(max_lines, (int, float)) and line_count > max_lines:
            text = "\n".join(lines[: int(max_lines)]) + f"\n\n... ({line_count - int(max_lines)} more lines truncated)"
            line_count = int(max_lines)
        preview = {
            "id": f"preview-{int(time.time() * 1000)}",
            "preview": text,
            "format": fmt,
            "lineCount": line_count,
            "timestamp": now_iso(),
            "metadata": {
                "inputItems": len(ctx.items),
                "previewedItems": len(chosen),
                "previewSource": source,
                "dataType": "object",
                "isArray": True,
                "truncated": isinstance(max_lines, (int, float)) and line_count >= max_lines,
            },
        }
        if truthy(ctx.parameter("appendMode", False)):
            history = [dict(preview)][: max(int(ctx.parameter("maxHistoryItems", 10) or 10), 0)]
            record = {**preview, "appendMode": True, "previewHistory": history, "historyCount": len(history)}
        else:
            record = {**preview, "appendMode": False, "autoCollapse": ctx.parameter("autoCollapse", False)}
        return {"main": [{"json": record}]}
