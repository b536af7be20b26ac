"""Running a parsed workflow: nodes in dependency order, items flowing along connections.

Rules (NodeDrop's, unless noted):

- Entry nodes (no incoming connection) always run; triggers see the execution input.
- A node runs when at least one incoming connection delivered items, after every node upstream of it
  has finished (a merge therefore sees all its inputs; in NodeDrop a merge after an ifElse waits for
  ever). A node that received nothing is ``skipped``, and so are the nodes after it unless items reach
  them another way. Branching nodes (ifElse, switch, loop) only deliver on the outputs that carry items.
- The nodes after a loop's ``loop`` output run once per batch, in sequence (RealtimeExecutionEngine
  executeLoopNode); the ``done`` output then feeds the rest.
- A disabled node is skipped, and nothing flows through it.
- A failing node fails the run; the remaining nodes are skipped. Only with both node settings
  ``continueOnFail`` and ``alwaysOutputData`` (NodeService.executeNode) does the error become the node's
  output: ``{"error": message, "errorDetails": {"message", "name"}}`` on its ``main`` (or first) output.
- ``$node`` in expressions holds the data of every node that ran so far, by id and by name.
- ``timeout`` (milliseconds, a node setting) runs the node in its own thread and abandons it when it runs
  longer; other nodes run in the caller's thread. Exceptions of the ``interrupts`` types (signals,
  ``on_event``) leave this module untouched and immediately.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import Any

# Imported here, not on first use: a worker imports the engine before it forks a child per execution
# (EXECUTION_ISOLATION=fork), and the node modules (httpx above all) took 70 ms to import in each child.
import nodedrop_rq.workflow.nodes  # noqa: F401
from nodedrop_rq.workflow.expressions import Expressions, node_data
from nodedrop_rq.workflow.graph import topological_order
from nodedrop_rq.workflow.limits import Limits
from nodedrop_rq.workflow.model import Connection, Node, Workflow
from nodedrop_rq.workflow.node_type import Inputs, NodeContext, NodeType, Outputs
from nodedrop_rq.workflow.nodes.items import copied as copy_items
from nodedrop_rq.workflow.registry import get_node_type
from nodedrop_rq.workflow.results import NodeError, NodeEvent, NodeRun, RunResult
from nodedrop_rq.workflow.validation import normalize_input

EventCallback = Callable[[NodeEvent], None]


class NodeTimeout(Exception):
    pass


class NodeOutputInvalid(Exception):
    pass


def _message(error: BaseException) -> str:
    if isinstance(error, MemoryError):
        return "out of memory (MemoryError): the node allocated more than the execution may use"
    text = str(error)
    # These exceptions' text alone ("'x'") does not say what went wrong.
    if isinstance(error, (KeyError, IndexError, AttributeError)) or not text:
        return f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text


def _detached(error: BaseException) -> BaseException:
    """The error without its tracebacks (nothing here reads them). They hold the failed node's frames, and
    those its data: after a MemoryError, hundreds of MB that only the cyclic GC would free, so that
    recording the failure could itself run out of memory."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        link.__traceback__ = None
        link = link.__cause__ or link.__context__
    return error


def _normalize(outputs: Any, limits: Limits) -> Outputs:
    if not isinstance(outputs, dict):
        raise NodeOutputInvalid(f"the node returned {type(outputs).__name__}, not a dict of output lists")
    normalized: Outputs = {}
    count = 0
    for name, items in outputs.items():
        if not isinstance(items, (list, tuple)):
            raise NodeOutputInvalid(f"output '{name}' is {type(items).__name__}, not a list of items")
        result = []
        for item in items:
            if not isinstance(item, dict):
                raise NodeOutputInvalid(f"output '{name}' holds {type(item).__name__}, not an item (dict)")
            if "json" in item and set(item) <= {"json", "binary", "pairedItem"}:
                # NodeDrop keeps any JSON value as an item's data (a JSON node's array of numbers
                # gives items whose json is a number).
                result.append(item)
            else:
                result.append({"json": item})
        normalized[str(name)] = result
        count += len(result)
    if count > limits.max_items:
        distinct = len({id(i) for items in normalized.values() for i in items})
        if distinct > limits.max_items:
            raise NodeOutputInvalid(f"the node produced {distinct} items; the limit is {limits.max_items}")
    return normalized


def _copy_run(run: NodeRun) -> NodeRun:
    copied = copy.copy(run)
    copied.output = {name: list(items) for name, items in run.output.items()}
    return copied


class _Run:
    def __init__(
        self,
        workflow: Workflow,
        execution_input: list[dict],
        on_event: EventCallback | None,
        limits: Limits,
        execution_id: str | None,
        interrupts: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.interrupts = interrupts
        self.workflow = workflow
        self.execution_input = execution_input
        self.on_event = on_event
        self.limits = limits
        self.execution_id = execution_id
        self.by_id: dict[str, Node] = {n.id: n for n in workflow.nodes}
        self.incoming: dict[str, list[Connection]] = {n.id: [] for n in workflow.nodes}
        self.outgoing: dict[str, list[Connection]] = {n.id: [] for n in workflow.nodes}
        for c in workflow.connections:
            if c.source_node_id in self.by_id and c.target_node_id in self.by_id:
                self.incoming[c.target_node_id].append(c)
                self.outgoing[c.source_node_id].append(c)
        self.ids_by_name: dict[str, list[str]] = {}
        for node in workflow.nodes:
            self.ids_by_name.setdefault(node.name, []).append(node.id)
        self.runs: dict[str, NodeRun] = {}
        self.failure: NodeError | None = None
        # $node in expressions: the data of every node that ran so far, by id and by name.
        self.node_data: dict[str, object] = {}

    # -- events ---------------------------------------------------------------------------------

    def emit(self, kind: str, run: NodeRun, **extra: Any) -> None:
        # Deliberately unguarded: whatever the callback raises (e.g. a cancellation) must reach the
        # caller of run_workflow at once, never be recorded as a node error.
        if self.on_event is not None:
            self.on_event(NodeEvent(kind, run.node_id, run.name, run.type, time.time(), **extra))

    def skip(self, run: NodeRun, reason: str) -> None:
        run.status = "skipped"
        run.skip_reason = reason
        self.runs[run.node_id] = run
        self.emit("node-skipped", run)

    # -- running ----------------------------------------------------------------------------------

    def gather(self, node: Node) -> Inputs:
        inputs: Inputs = {}
        for connection in self.incoming[node.id]:
            source_run = self.runs.get(connection.source_node_id)
            if source_run is None or source_run.status != "succeeded":
                continue
            source = self.by_id[connection.source_node_id]
            source_type = get_node_type(source.type)
            if source_type is not None:
                items = source_type.route(source.parameters, source_run.output, connection.source_output)
            else:
                items = source_run.output.get(connection.source_output, [])
            if items:
                inputs.setdefault(connection.target_input, []).append(items)
        return inputs

    def call(
        self, node: Node, node_type: NodeType, ctx: NodeContext, inputs: Inputs
    ) -> tuple[Any, BaseException | None]:
        timeout = node.timeout_seconds
        if timeout is None:
            # No node timeout: run here. A thread per node cost more than most nodes themselves, and the
            # worker's job timeout still bounds the whole execution.
            try:
                return node_type.execute(ctx, inputs), None
            except self.interrupts:
                raise
            except Exception as exc:  # any failure of node code is the node's error
                return None, _detached(exc)
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["outputs"] = node_type.execute(ctx, inputs)
            except BaseException as exc:  # any failure of node code is the node's error
                box["error"] = _detached(exc)

        thread = threading.Thread(target=target, name=f"node-{node.id}", daemon=True)
        thread.start()
        try:
            thread.join(timeout)
        finally:
            # Also reached when the caller's thread is interrupted: stop a sleeping node either way.
            if thread.is_alive():
                ctx.cancelled.set()
        if thread.is_alive():
            return None, NodeTimeout(f"node timed out after {node.settings.get('timeout')} ms")
        if "error" in box:
            return None, box["error"]
        return box.get("outputs"), None

    def run_node(self, node: Node, node_type: NodeType, inputs: Inputs, run: NodeRun) -> None:
        if not node_type.pure:
            inputs = copy_items(inputs)
        items = [item for group in inputs.get("main", []) for item in group]
        expressions = Expressions(
            items,
            nodes=self.node_data,
            execution={"id": self.execution_id, "mode": "manual"},
            js_limits=self.limits.js,
            max_length=self.limits.max_expression_length,
        )
        ctx = NodeContext(
            node=node,
            workflow=self.workflow,
            items=items,
            execution_input=self.execution_input if node_type.trigger else [],
            limits=self.limits,
            expressions=expressions,
            execution_id=self.execution_id,
        )
        run.status = "running"
        run.input_count = sum(len(group) for groups in inputs.values() for group in groups)
        run.started_at = time.time()
        self.runs[node.id] = run
        self.emit("node-started", run)
        began = time.perf_counter()
        outputs, error = self.call(node, node_type, ctx, inputs)
        if error is None:
            try:
                outputs = _normalize(outputs, self.limits)
            except NodeOutputInvalid as exc:
                error = exc
        run.finished_at = time.time()
        run.duration_ms = round((time.perf_counter() - began) * 1000, 3)
        if error is not None:
            run.error = _message(error)
            # NodeDrop's NodeService.executeNode continues only when both settings are on.
            if not (node.continue_on_fail and node.always_output_data):
                run.status = "failed"
                self.failure = NodeError(node.id, node.type, node.name, run.error)
                self.emit("node-failed", run, duration_ms=run.duration_ms, error=run.error)
                return
            first_output = "main" if "main" in node_type.outputs or not node_type.outputs else node_type.outputs[0]
            try:
                outputs = {first_output: [node_type.error_item(ctx, error)]}
            except Exception:  # a custom error_item must not lose the original error
                outputs = {first_output: [{"json": {"error": run.error}}]}
        run.status = "succeeded"
        run.output = outputs
        run.output_count = len(run.items())
        data = node_data(run.items())
        self.node_data[node.id] = data
        if node.name != node.id:
            self.node_data[node.name] = data
        self.emit("node-completed", run, duration_ms=run.duration_ms, output_count=run.output_count, error=run.error)

    def step(self, node_id: str) -> None:
        node = self.by_id[node_id]
        run = NodeRun(node.id, node.name, node.type)
        if self.failure is not None:
            self.skip(run, f"not run: node '{self.failure.node_name}' failed")
            return
        if node.disabled:
            self.skip(run, "disabled")
            return
        inputs = self.gather(node)
        if self.incoming[node_id] and not inputs:
            self.skip(run, "received no items")
            return
        node_type = get_node_type(node.type)
        if node_type is None:
            run.status, run.error = "failed", f"unknown node type '{node.type}'"
            run.started_at = run.finished_at = time.time()
            self.runs[node_id] = run
            self.failure = NodeError(node.id, node.type, node.name, run.error)
            self.emit("node-failed", run, error=run.error)
            return
        self.run_node(node, node_type, inputs, run)

    def iterate(self, loop_id: str, loop_type: NodeType, loop_run: NodeRun) -> set[str]:
        """Run the nodes after a loop's ``loop`` output once per batch, in sequence, as NodeDrop's
        RealtimeExecutionEngine.executeLoopNode does. Returns those nodes (they are done)."""
        body: set[str] = set()
        frontier = [c.target_node_id for c in self.outgoing[loop_id] if c.source_output == "loop"]
        while frontier:
            current = frontier.pop()
            if current in body or current == loop_id:
                continue
            body.add(current)
            frontier.extend(c.target_node_id for c in self.outgoing[current])
        body_order = [node_id for node_id in self.order if node_id in body]
        full = loop_run.output
        totals: dict[str, NodeRun] = {}
        for batch in loop_type.batches(full.get("loop", [])):
            loop_run.output = {"loop": batch, "done": []}
            for node_id in body_order:
                self.runs.pop(node_id, None)
                self.step(node_id)
                latest = self.runs.get(node_id)
                if latest is None:
                    continue
                total = totals.get(node_id)
                if total is None or total.status != "succeeded":
                    totals[node_id] = latest if latest.status != "succeeded" else _copy_run(latest)
                elif latest.status == "succeeded":
                    for name, items in latest.output.items():
                        total.output.setdefault(name, []).extend(items)
                    total.output_count += latest.output_count
                    total.finished_at = latest.finished_at
                    total.duration_ms = (total.duration_ms or 0) + (latest.duration_ms or 0)
            if self.failure is not None:
                break
        loop_run.output = full
        # The recorded run of each body node holds the items of all iterations; $node keeps the last
        # iteration's data, as NodeDrop's nodeOutputs does.
        for node_id in body_order:
            if node_id in totals:
                self.runs[node_id] = totals[node_id]
            elif node_id not in self.runs:
                self.skip(NodeRun(node_id, self.by_id[node_id].name, self.by_id[node_id].type), "received no items")
        return body

    def run(self) -> RunResult:
        started = time.time()
        order = topological_order(
            [n.id for n in self.workflow.nodes],
            [(c.source_node_id, c.target_node_id) for c in self.workflow.connections],
        )
        self.order = order
        finished: set[str] = set()
        for node_id in order:
            if node_id in finished:
                continue
            self.step(node_id)
            run = self.runs.get(node_id)
            node_type = get_node_type(self.by_id[node_id].type)
            if run is not None and run.status == "succeeded" and getattr(node_type, "iterates", False):
                finished |= self.iterate(node_id, node_type, run)
        return RunResult(
            status="failed" if self.failure else "succeeded",
            nodes=self.runs,
            output=self.final_output(),
            error=self.failure,
            started_at=started,
            finished_at=time.time(),
        )

    def final_output(self) -> list[dict]:
        if self.failure is not None:
            return []
        succeeded = [run for run in self.runs.values() if run.status == "succeeded"]
        leaves = [run for run in succeeded if not self.outgoing[run.node_id]]
        if leaves:
            return [item for run in leaves for item in run.items()]
        return succeeded[-1].items() if succeeded else []


def run_workflow(
    workflow: Workflow,
    input_items: list[dict],
    *,
    on_event: EventCallback | None = None,
    limits: Limits | None = None,
    execution_id: str | None = None,
    interrupts: tuple[type[BaseException], ...] = (),
) -> RunResult:
    """Run a workflow from :func:`parse_workflow` in this process and return what happened.

    ``input_items`` feed the trigger nodes (see :func:`normalize_input` for what is accepted).
    ``on_event`` is called as each node starts, completes, fails or is skipped; anything it raises
    propagates immediately (that is how a caller cancels a run). Node failures do not raise: they
    give a ``failed`` result, except exceptions of the ``interrupts`` types (e.g. the worker's job
    timeout), which propagate. ``execution_id`` is what ``$execution.id`` shows.
    """
    limits = limits or Limits()
    items = normalize_input(input_items, limits) if input_items else []
    return _Run(workflow, items, on_event, limits, execution_id, interrupts).run()
