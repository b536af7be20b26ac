"""``/healthz`` and ``/healthz/readiness``: the probes an orchestrator uses (names as n8n has them).

* ``/healthz`` (liveness) answers 200 whenever the process serves HTTP. It never touches Redis: a Redis
  outage must not make Kubernetes restart every API pod, which would not bring Redis back and would only
  add cold starts once it returns.
* ``/healthz/readiness`` answers 200 only when Redis answers a PING within a short deadline, else 503:
  the pod leaves the Service's endpoints until it can serve again, without being restarted.

Both are public (no bearer token), like ``/api/health``: they reveal no data.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis import Redis
from redis.exceptions import RedisError

# Seconds; shorter than the usual probe timeout (1 s is Kubernetes' default), so a black-holed Redis
# gets a 503 from us rather than a probe timeout.
READINESS_DEADLINE = 0.9


class Alive(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ok"]
    redis: Literal["up"]


class NotReady(BaseModel):
    status: Literal["unavailable"]
    redis: Literal["down"]
    reason: str


def build_health_router(connection: Redis, redis_where: str,
                        describe: Callable[[BaseException], str] | None = None) -> APIRouter:
    """Routes on ``connection`` (a client with short timeouts and no retries); ``redis_where`` names the
    server in answers without its password; ``describe(exc)`` renders an error without secrets."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", response_model=Alive, summary="Liveness: the process serves HTTP (no Redis)")
    async def alive() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/healthz/readiness", response_model=Ready, summary="Readiness: Redis answers; 503 otherwise",
                responses={503: {"model": NotReady, "description": "Redis is unreachable"}})
    async def ready() -> Any:
        try:
            # The loop's default executor, not the request thread pool: a probe is not queued behind busy
            # requests; on timeout the thread is abandoned and ends at its socket timeout.
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.run_in_executor(None, connection.ping), READINESS_DEADLINE)
        except asyncio.TimeoutError:
            return _not_ready(f"Redis at {redis_where} did not answer within {READINESS_DEADLINE:g} s")
        except RedisError as exc:
            text = describe(exc) if describe is not None else type(exc).__name__
            return _not_ready(f"cannot reach Redis at {redis_where}: {text}")
        return {"status": "ok", "redis": "up"}

    return router


def _not_ready(reason: str) -> JSONResponse:
    return JSONResponse({"status": "unavailable", "redis": "down", "reason": reason}, status_code=503)
