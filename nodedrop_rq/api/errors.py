"""Error answers of the HTTP service: every one is JSON ``{"error": "...", ...}``."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from nodedrop_rq.workflow import Problem


class ApiError(Exception):
    """Raised anywhere in a request; answered as ``status`` with ``{"error": error, **extra}``."""

    def __init__(self, status: int, error: str, detail: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(error)
        self.status = status
        self.body: dict[str, Any] = {"error": error}
        if detail is not None:
            self.body["detail"] = detail
        self.body.update(extra)
        self.headers = headers

    def response(self) -> JSONResponse:
        return JSONResponse(self.body, status_code=self.status, headers=self.headers)


def problems_error(error: str, problems: list[Problem]) -> ApiError:
    return ApiError(422, error, problems=[p.to_dict() for p in problems])


def scrub(text: str, *secrets: str | None) -> str:
    """``text`` with every non-empty secret replaced (Redis passwords, the API token)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
