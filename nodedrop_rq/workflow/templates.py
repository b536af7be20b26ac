"""Finding ``{{ ... }}`` expressions in parameter strings.

NodeDrop (like n8n) lets any string parameter hold expressions: ``"Hello {{ $json.name }}"``. The UI
may prefix such a string with ``=`` (expression mode); that marker is dropped. This module only finds
and splits them; :mod:`nodedrop_rq.workflow.expressions` evaluates them.
"""

from __future__ import annotations

from dataclasses import dataclass

OPEN = "{{"
CLOSE = "}}"


@dataclass(frozen=True)
class Segment:
    start: int  # index of "{{"
    end: int  # index just past "}}"
    source: str  # the text between the braces, stripped


def _skip_string(text: str, i: int) -> int | None:
    """Index just past the string literal starting at ``text[i]``, or None when it is not closed."""
    quote = text[i]
    j = i + 1
    while j < len(text):
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == quote:
            return j + 1
        j += 1
    return None


def _find_close(text: str, start: int) -> int | None:
    """Index of the ``}}`` closing an expression whose body starts at ``start``.

    Braces and string literals inside the expression are skipped, so ``{{ {"a": "}}"} }}`` works.
    """
    depth = 0
    j = start
    while j < len(text):
        c = text[j]
        if c in "'\"":
            after = _skip_string(text, j)
            if after is None:
                # An unbalanced quote (``{{ it's }}``): fall back to the first "}}".
                found = text.find(CLOSE, start)
                return None if found < 0 else found
            j = after
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            if depth > 0:
                depth -= 1
            elif text.startswith(CLOSE, j):
                return j
        j += 1
    return None


def find_segments(text: str) -> list[Segment]:
    """Every complete ``{{ ... }}`` in ``text``, in order. An unclosed ``{{`` is plain text."""
    segments: list[Segment] = []
    i = text.find(OPEN)
    while i >= 0:
        close = _find_close(text, i + len(OPEN))
        if close is None:
            break
        segments.append(Segment(i, close + len(CLOSE), text[i + len(OPEN) : close].strip()))
        i = text.find(OPEN, close + len(CLOSE))
    return segments


def has_expression(text: str) -> bool:
    return OPEN in text and bool(find_segments(text))


def strip_marker(text: str) -> str:
    """Drop NodeDrop's expression-mode marker: ``"={{ $json.a }}"`` -> ``"{{ $json.a }}"``.

    Only when an expression follows, so a literal ``"=5"`` stays ``"=5"``.
    """
    if text.startswith("=") and has_expression(text[1:]):
        return text[1:]
    return text


def single_expression(text: str) -> Segment | None:
    """The segment when ``text`` is exactly one ``{{ ... }}`` (surrounding blanks allowed)."""
    segments = find_segments(text)
    if len(segments) != 1:
        return None
    seg = segments[0]
    if text[: seg.start].strip() or text[seg.end :].strip():
        return None
    return seg
