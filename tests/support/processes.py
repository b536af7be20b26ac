"""Process trees from /proc: the tests' own copy, so that no test depends on bench/."""

from __future__ import annotations

from pathlib import Path


def descendants(pid: int) -> list[int]:
    """Pids of every process below ``pid`` (children, grandchildren ...)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
