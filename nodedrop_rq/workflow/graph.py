"""Graph helpers: execution order and cycle detection over node ids."""

from __future__ import annotations

import heapq
from collections.abc import Iterable


def topological_order(node_ids: list[str], edges: Iterable[tuple[str, str]]) -> list[str]:
    """Nodes in dependency order; among ready nodes, document order wins (runs are reproducible).

    Nodes on a cycle are left out (validation refuses cycles before anything runs).
    """
    position = {node_id: i for i, node_id in enumerate(node_ids)}
    indegree = dict.fromkeys(node_ids, 0)
    successors: dict[str, list[str]] = {node_id: [] for node_id in node_ids}
    for source, target in edges:
        if source in position and target in position:
            successors[source].append(target)
            indegree[target] += 1
    ready = [(position[n], n) for n in node_ids if indegree[n] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, node_id = heapq.heappop(ready)
        order.append(node_id)
        for target in successors[node_id]:
            indegree[target] -= 1
            if indegree[target] == 0:
                heapq.heappush(ready, (position[target], target))
    return order


def find_cycles(node_ids: list[str], edges: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Each cycle as its node ids (strongly connected components of 2+ nodes, or a node linked to itself)."""
    successors: dict[str, list[str]] = {node_id: [] for node_id in node_ids}
    self_loops: set[str] = set()
    for source, target in edges:
        if source in successors and target in successors:
            successors[source].append(target)
            if source == target:
                self_loops.add(source)
    # Tarjan's algorithm, iterative so a long chain cannot hit the recursion limit.
    index_of: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for root in node_ids:
        if root in index_of:
            continue
        work = [(root, 0)]
        while work:
            node, child_index = work.pop()
            if child_index == 0:
                index_of[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = successors[node]
            if child_index < len(children):
                work.append((node, child_index + 1))
                child = children[child_index]
                if child not in index_of:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index_of[child])
                continue
            if low[node] == index_of[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in self_loops:
                    order = {n: i for i, n in enumerate(node_ids)}
                    cycles.append(sorted(component, key=order.__getitem__))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return cycles
