"""What every handler needs: settings, AWS adapters, JSON bodies, JSON errors."""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Optional

from chalice import Response

from flowplane import jsonsafe

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
            headers = {"Content-Type": "application/json", **e.headers}
            return Response(body=e.to_dict(), status_code=e.status, headers=headers)

    return wrapper


def json_body(raw: Optional[bytes | str], required: bool = True) -> dict[str, Any]:
    """The body as an object of strict JSON (flowplane/jsonsafe.py); a 400 names where it is not.

    A number JSON cannot carry (NaN, 1e999, a 5,000-digit integer) is refused with its
    place as the field (`parameters.alpha`), and, under `parameters`, the parameter named.
    """
    if not raw:
        if required:
            raise BadRequest("the request needs a JSON object as its body", field="body")
        return {}
    try:
        value = jsonsafe.loads(raw)
    except jsonsafe.UnsafeJSON as e:
        field = jsonsafe.where(e.path) or "body"
        extra = {"parameter": e.path[1]} if len(e.path) >= 2 and e.path[0] == "parameters" else {}
        raise BadRequest(f"{field}: {e.message}", field=field, **extra) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(f"the body is not JSON ({e})", field="body") from None
    if not isinstance(value, dict):
        raise BadRequest("the body must be a JSON object", field="body")
    return value


def content_type(headers: Any) -> str:
    return (headers.get("content-type") or "").split(";")[0].strip().lower()
