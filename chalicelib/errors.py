"""Errors the control plane answers with: a status and a JSON body naming the fault.

Every refusal is raised as an `ApiError` deep in `chalicelib/` and turned into
`{"error": ..., "field"/"step"/"line": ...}` at the edge (routes) or into a
FAILED deployment record (the compile Lambda), so both say the same thing.
"""

from __future__ import annotations

from typing import Any, Optional


class ApiError(Exception):
    """The base refusal. A subclass declared with `status=` answers with that
    status and its own class name as the body's "code" (`class NotFound(ApiError,
    status=404)`), so the status and the code are written once, side by side; one
    declared without it inherits both and may set its own `code` in its body."""

    status = 400
    code = "BadRequest"
    # Response headers beside the body (a Retry-After on a refusal worth asking again).
    headers: dict[str, str] = {}

    def __init_subclass__(cls, status: Optional[int] = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status
            if "code" not in cls.__dict__:
                cls.code = cls.__name__

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


class BadRequest(ApiError, status=400):
    """The request names a fault of its own: a bad field, step or line."""


class Forbidden(ApiError, status=403):
    """The caller may not do this (e.g. deploy over a flow without its production token)."""


class NotFound(ApiError, status=404):
    """What the path names does not exist."""


class Conflict(ApiError, status=409):
    """The request races or contradicts what is stored (a deploy racing a delete)."""


class UnprocessableEntity(ApiError, status=422):
    """The request is well formed but contradicts what it refers to (a reused idempotency key)."""


class PayloadTooLarge(ApiError, status=413):
    """The body is over the size the route takes."""


class UnsupportedMediaType(ApiError, status=415):
    """The body is not of the content type the route reads."""
