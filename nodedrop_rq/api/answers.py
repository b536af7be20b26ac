"""Stored records made answerable: reading an execution must never fail because of what it stored.

A node can produce output that Python's ``json`` wrote but a strict serializer will not write back (NaN,
lone surrogates, nesting past pydantic's limit), and a hash written by hand or by an older version may not
have the documented shape. Such values are answered in a form that can be serialized (see
:func:`nodedrop_rq.jsontext.readable`), and fields that do not fit the response model are moved
to ``unreadableFields`` as JSON text, so the rest of the state is still answered.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ValidationError

from nodedrop_rq.api.models import ExecutionState
from nodedrop_rq.jsontext import readable

# Fields a state cannot be answered without; their absence is a 404 (see app._complete).
_REQUIRED = ("id", "status")


def state_answer(found: dict[str, Any]) -> dict[str, Any]:
    """``found`` (a decoded execution state) in a form that :class:`ExecutionState` validates and
    serializes."""
    return fit(ExecutionState, readable(found))


def fit(model: type[BaseModel], record: dict[str, Any]) -> dict[str, Any]:
    record = dict(record)
    unreadable: dict[str, str] = {}
    for _ in range(len(record) + 1):
        try:
            model.model_validate(record)
            break
        except ValidationError as exc:
            fields = {error["loc"][0] for error in exc.errors() if error.get("loc")}
            movable = [f for f in fields if isinstance(f, str) and f in record and f not in _REQUIRED]
            if not movable:
                raise
            for field in movable:
                unreadable[field] = json.dumps(record.pop(field))
    if unreadable:
        record["unreadableFields"] = unreadable
    return record


async def submitted(request: Request, response: Response, status_of: Callable[[str], str | None], execution_id: str,
                    idempotency_key: str | None) -> dict[str, Any]:
    """The ``202`` answer of a submit (``SubmitResponse``) with its ``Location``; ``status_of`` reads an
    execution's status (on whichever Redis holds it)."""
    # "queued" for a new execution; a reused idempotency key answers with the first one's status.
    status = "queued"
    if idempotency_key is not None:
        status = await run_in_threadpool(status_of, execution_id) or status
    base = f"{request.scope.get('root_path', '')}/api/executions/{execution_id}"
    response.headers["Location"] = base
    return {"id": execution_id, "status": status, "links": {"self": base, "cancel": f"{base}/cancel"}}
