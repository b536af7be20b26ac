"""Size and time limits applied to workflows, at validation and while they run."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nodedrop_rq.settings import Settings

from dataclasses import dataclass, field

from nodedrop_rq.workflow.js import JsLimits


@dataclass(frozen=True)
class Limits:
    """Limits for one engine. Build it from the process settings with :meth:`from_settings`."""

    max_nodes: int = 500
    # Items of the execution input and of any one node's output.
    max_items: int = 10_000
    # Characters inside one ``{{ ... }}``.
    max_expression_length: int = 2000
    max_document_bytes: int = 1_048_576
    # ``delay``/``wait`` nodes sleep at most this long; longer requests are capped, not refused, so a
    # workflow written for NodeDrop still runs (more quickly) under a tighter limit.
    max_delay_seconds: float = 300.0
    # ``http-request``: bytes read from one response body.
    max_response_bytes: int = 10_485_760
    # ``http-request``: loopback, private and link-local addresses are refused unless this is set, so a
    # submitted workflow cannot probe the worker's network (cloud metadata endpoints, Redis, ...).
    allow_private_network: bool = False
    # Non-public networks http-request may still reach (CIDRs, e.g. "10.1.2.0/24"), the SSRF allow-list.
    allowed_networks: tuple[str, ...] = ()
    # The JavaScript sandbox: time per evaluation, heap and stack of the context.
    js: JsLimits = field(default_factory=JsLimits)
    # The Code node's `timeout` parameter is capped at this many milliseconds.
    code_max_timeout_ms: int = 30_000

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_nodes=settings.max_nodes,
            max_items=settings.max_input_items,
            max_expression_length=settings.max_expression_length,
            max_document_bytes=settings.max_document_bytes,
            max_delay_seconds=settings.max_delay_seconds,
            max_response_bytes=settings.max_response_bytes,
            allow_private_network=settings.http_allow_private_network,
            allowed_networks=settings.http_allowed_networks,
            js=JsLimits(
                time_limit_ms=settings.js_time_limit_ms,
                memory_limit_bytes=settings.js_memory_limit_mb * 1024 * 1024,
                stack_limit_bytes=settings.js_stack_limit_kb * 1024,
            ),
            code_max_timeout_ms=settings.code_max_timeout_ms,
        )
