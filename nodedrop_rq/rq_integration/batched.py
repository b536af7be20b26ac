"""Send a transaction's plain commands as one script call: the same writes, a fraction of the client's work.

RQ writes a job's start and finish as some twenty commands each (the execution record, registries, the
worker's state and heartbeat, the job hash). In a MULTI, redis-py packs each one, reads a ``QUEUED`` reply
for each and then runs a reply callback for each: about 8 µs of the worker's CPU per command, more than
everything else it does for a trivial execution's bookkeeping. :func:`execute` sends each run of plain
commands of a transaction pipeline as one ``EVAL`` of :data:`RUN`, which calls them in order with
``redis.pcall``, so they are as atomic as before (a script is, and it sits inside the same MULTI), keep
MULTI's rule that one failing command does not stop the others, and answer with each command's own reply.
Scripts of the transaction (EVAL/EVALSHA) stay commands of their own, in their place.

The replies of batched commands are Redis's raw replies (no redis-py callback: SMEMBERS answers a list,
not a set); an error is a ``ResponseError`` in its place, as ``execute(raise_on_error=False)`` gives.
"""

from __future__ import annotations

from typing import Any

from redis.client import Pipeline

# ARGV: for each command, its number of words, then its words. Returns each command's reply, an error
# reply in place of a command that failed.
RUN = """
local replies = {}
local i = 1
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  replies[#replies + 1] = redis.pcall(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return replies
"""
_SCRIPTS = {"EVAL", "EVALSHA"}


def execute(pipe: Pipeline) -> list[Any]:
    """Execute transaction ``pipe`` with its plain commands batched; the replies, one per queued command."""
    stack = pipe.command_stack
    batched: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    # For each entry sent: None for a command sent as is, else how many commands its batch holds.
    sizes: list[int | None] = []
    run: list[Any] = []
    count = 0

    def close_run() -> None:
        nonlocal run, count
        if count:
            batched.append((("EVAL", RUN, 0, *run), {}))
            sizes.append(count)
            run, count = [], 0

    for args, options in stack:
        name = str(args[0]).upper()
        if name in _SCRIPTS:
            close_run()
            batched.append((args, options))
            sizes.append(None)
        else:
            run.append(len(args))
            run.extend(args)
            count += 1
    close_run()
    pipe.command_stack = batched
    replies = pipe.execute(raise_on_error=False)
    out: list[Any] = []
    for size, reply in zip(sizes, replies, strict=True):
        if size is None:
            out.append(reply)
        elif isinstance(reply, Exception):
            out.extend([reply] * size)  # the batch itself failed: so did each of its commands
        else:
            out.extend(reply)
    return out
