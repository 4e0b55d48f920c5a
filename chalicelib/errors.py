"""Errors the control plane answers with: a status and a JSON body naming the fault.

Every refusal is raised as an `ApiError` deep in `chalicelib/` and turned into
`{"error": ..., "field"/"step"/"line": ...}` at the edge (routes) or into a
FAILED deployment record (the compile Lambda), so both say the same thing.
"""

from __future__ import annotations

from typing import Any, Optional


class ApiError(Exception):
    status = 400
    code = "BadRequest"

    def __init__(
        self,
        message: str,
        *,
        field: Optional[str] = None,
        step: Optional[str] = None,
        line: Optional[int] = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.step = step
        self.line = line
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message, "code": self.code}
        for key in ("field", "step", "line"):
            value = getattr(self, key)
            if value is not None:
                body[key] = value
        body.update(self.extra)
        return body


class BadRequest(ApiError):
    status = 400
    code = "BadRequest"


class Forbidden(ApiError):
    status = 403
    code = "Forbidden"


class NotFound(ApiError):
    status = 404
    code = "NotFound"


class Conflict(ApiError):
    status = 409
    code = "Conflict"


class PayloadTooLarge(ApiError):
    status = 413
    code = "PayloadTooLarge"


class UnsupportedMediaType(ApiError):
    status = 415
    code = "UnsupportedMediaType"
