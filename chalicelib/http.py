"""What every handler needs: settings, AWS adapters, JSON bodies, JSON errors."""

from __future__ import annotations

import functools
import json
import logging
from typing import Any, Callable, Optional

from chalice import Response

from .aws import Aws
from .errors import ApiError, BadRequest
from .settings import Settings

log = logging.getLogger("flowplane.http")

_AWS: dict[str, Aws] = {}


def aws() -> Aws:
    """The stage's adapters; clients are reused while the Lambda stays warm."""
    settings = Settings.from_env()
    key = settings.model_dump_json()
    if key not in _AWS:
        _AWS[key] = Aws(settings)
    return _AWS[key]


def reset() -> None:
    """Forget cached clients (tests start a new moto world per test)."""
    _AWS.clear()


def json_errors(view: Callable[..., Any]) -> Callable[..., Any]:
    """An ApiError becomes its status with {"error": ..., "field"/"step"/"line": ...}."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except ApiError as e:
            return Response(body=e.to_dict(), status_code=e.status, headers={"Content-Type": "application/json"})

    return wrapper


def json_body(raw: Optional[bytes | str], required: bool = True) -> dict[str, Any]:
    if not raw:
        if required:
            raise BadRequest("the request needs a JSON object as its body", field="body")
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"the body is not JSON ({e})", field="body") from None
    if not isinstance(value, dict):
        raise BadRequest("the body must be a JSON object", field="body")
    return value


def content_type(headers: Any) -> str:
    return (headers.get("content-type") or "").split(";")[0].strip().lower()
