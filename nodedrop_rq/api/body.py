"""Reading a JSON request body with a hard size limit, a deadline and exact status codes.

FastAPI's own body parsing would read the whole body before any check and answer every problem with
422; here the declared ``Content-Length`` is checked before a byte is read, the bytes actually read
are counted (a client may lie, or send chunked), the whole body must arrive within
``NODEDROP_API_BODY_TIMEOUT`` seconds (a client that declares more than it sends would otherwise hold
the request forever), and each kind of bad body gets its own status: 408 too slow, 413 too large,
415 not JSON, 400 not strict JSON, 422 not what the route's request model describes.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect

from nodedrop_rq.api.errors import ApiError, problems_error
from nodedrop_rq.jsontext import JsonTextError, loads
from nodedrop_rq.workflow import Problem

JSON_MEDIA_TYPES = ("application/json",)
Model = TypeVar("Model", bound=BaseModel)


class ClientGone(Exception):
    """The client closed the connection before its body arrived: nobody is left to answer."""


def is_json_content_type(header: str | None) -> bool:
    """``application/json`` or ``application/<anything>+json``, with any parameters (charset=...)."""
    if not header:
        return False
    media_type = header.split(";", 1)[0].strip().lower()
    return media_type in JSON_MEDIA_TYPES or (media_type.startswith("application/") and media_type.endswith("+json"))


def too_large(limit: int) -> ApiError:
    return ApiError(413, "request body too large", f"the limit is {limit} bytes (NODEDROP_MAX_BODY_BYTES)",
                    limit=limit)


def check_declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is None:
        return
    if not declared.strip().isdigit():
        raise ApiError(400, "invalid Content-Length header", "Content-Length must be a whole number of bytes")
    if int(declared) > limit:
        raise too_large(limit)


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The body, refusing with 413 as soon as more than ``limit`` bytes have arrived and with 408 when
    it has not arrived in full within ``timeout`` seconds."""
    check_declared_length(request, limit)
    received = bytearray()

    async def receive_all() -> None:
        async for chunk in request.stream():
            received.extend(chunk)
            if len(received) > limit:
                raise too_large(limit)

    try:
        await asyncio.wait_for(receive_all(), timeout)
    except asyncio.TimeoutError:
        raise ApiError(408, "request body timeout",
                       f"the body did not arrive in full within {timeout:g} s (NODEDROP_API_BODY_TIMEOUT); "
                       f"{len(received)} bytes arrived", headers={"Connection": "close"}) from None
    except ClientDisconnect:
        raise ClientGone() from None
    return bytes(received)


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        raise ApiError(400, "malformed JSON", "the request body is empty")
    try:
        # Strict JSON only: NaN, Infinity and lone surrogates would make the stored job unreadable.
        return loads(raw)
    except JsonTextError as exc:
        raise ApiError(400, "malformed JSON", str(exc)) from None


async def read_json_object(request: Request, limit: int, timeout: float) -> dict[str, Any]:
    """The body as a JSON object: 408 too slow, 413 too large, 415 not declared JSON, 400 unparseable or
    not an object."""
    check_declared_length(request, limit)
    if not is_json_content_type(request.headers.get("content-type")):
        raise ApiError(415, "unsupported media type", "send the body as Content-Type: application/json")
    document = parse_json(await read_body(request, limit, timeout))
    if not isinstance(document, dict):
        raise ApiError(400, "invalid request body", "the body must be a JSON object")
    return document


def parse_model(model: type[Model], document: dict[str, Any]) -> Model:
    """``document`` validated by the route's request model: 422 listing every problem otherwise."""
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise problems_error("invalid request", model_problems(exc)) from None


def model_problems(exc: ValidationError) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        path = ""
        for part in error.get("loc", ()):
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        problems.append(Problem(path, message))
    return problems
