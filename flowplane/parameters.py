"""`Parameter`, `JSONType` and deploy-time defaults.

A default may be a function of a `DeployTimeContext`; it is evaluated once, on
the client, at the start of `run` or at `step-functions create`, and the value
travels from there (the control plane never runs user code).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

from . import jsonsafe


class ParameterError(ValueError):
    """A parameter value or definition is wrong; the message names the parameter."""


class _JSONTypeClass:
    name = "JSON"

    def __call__(self, value: Any) -> Any:
        # Held to the JSON every hop reads alike (flowplane/jsonsafe.py): the value travels
        # in the execution input, the run record and the task's environment.
        try:
            if isinstance(value, str):
                return jsonsafe.loads(value)
            jsonsafe.check(value)
            return value
        except json.JSONDecodeError as e:
            raise ValueError(f"not valid JSON ({e.msg} at position {e.pos})") from None
        except jsonsafe.UnsafeJSON as e:
            at = f" at {jsonsafe.where(e.path)}" if e.path else ""
            raise ValueError(f"not valid JSON{at}: {e.message}") from None

    def __repr__(self) -> str:
        return "JSONType"


JSONType = _JSONTypeClass()


@dataclass(frozen=True)
class DeployTimeContext:
    """What a deploy-time default can look at (Metaflow's fields)."""

    flow_name: str
    parameter_name: str
    user_name: str
    logger: Callable[[str], None] = print
    ds_type: str = "local"
    ds_root: Optional[str] = None


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "y", "on"):
        return True
    if text in ("false", "0", "no", "n", "off"):
        return False
    raise ValueError(f"{value!r} is not a boolean (use true or false)")


def _parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    number = value if isinstance(value, int) else int(str(value).strip())
    if not jsonsafe.INT_MIN <= number <= jsonsafe.INT_MAX:
        raise ValueError(f"integers must be within {jsonsafe.INT_MIN}..{jsonsafe.INT_MAX}")
    return number


def _parse_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        # JSON has no NaN or Infinity: the run's input could not carry it.
        raise ValueError("numbers must be finite (no nan, inf or values beyond 1.8e308)")
    return number


def _parse_str(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value) if not isinstance(value, (int, float)) else str(value)


def _parse_include(value: Any) -> dict[str, Any]:
    # Imported here: the datastore package is not needed to define parameters.
    from .datastore.includes import IncludeDescriptor

    return IncludeDescriptor.parse(value).to_json()


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "str": _parse_str,
    "int": _parse_int,
    "float": _parse_float,
    "bool": _parse_bool,
    "json": JSONType,
    # IncludeFile: the descriptor of a file the client stored (datastore/includes.py).
    "include": _parse_include,
}

_TYPE_NAMES = {str: "str", int: "int", float: "float", bool: "bool"}


def convert(type_name: str, value: Any, param_name: str) -> Any:
    """Turn a CLI string (or JSON value) into the parameter's type."""
    try:
        return CONVERTERS[type_name](value)
    except (ValueError, TypeError, OverflowError) as e:
        raise ParameterError(f"parameter {param_name!r}: {shown(value)} is not a valid {type_name}: {e}") from None


def shown(value: Any) -> str:
    """The value in an error message, cut short: a refused value may be megabytes."""
    text = repr(value) if not isinstance(value, (dict, list)) else f"a {type(value).__name__}"
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


class Parameter:
    """A flow parameter: `alpha = Parameter('alpha', default=0.01)`.

    Read inside a step as `self.alpha`; set with `--alpha 0.5` on `run` or
    `step-functions trigger`.
    """

    def __init__(
        self,
        name: str,
        default: Any = None,
        type: Any = None,
        help: Optional[str] = None,
        required: bool = False,
        show_default: bool = True,
        **_ignored: Any,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ParameterError("Parameter needs a name")
        self.name = name
        self.default = default
        self.help = help
        self.required = bool(required)
        self.show_default = show_default
        self.attribute: Optional[str] = None
        self.type_name = self._type_name(type, default)

    def _type_name(self, type_: Any, default: Any) -> str:
        if type_ is None:
            if callable(default) or default is None:
                return "str"
            for t in (bool, int, float, str):
                if isinstance(default, t):
                    return _TYPE_NAMES[t]
            if isinstance(default, (dict, list)):
                return "json"
            raise ParameterError(f"parameter {self.name!r}: cannot infer a type from default {default!r}")
        if type_ is JSONType or type_ is _JSONTypeClass:
            return "json"
        if type_ in _TYPE_NAMES:
            return _TYPE_NAMES[type_]
        raise ParameterError(f"parameter {self.name!r}: type must be str, int, float, bool or JSONType, got {type_!r}")

    @property
    def is_deploy_time(self) -> bool:
        return callable(self.default)

    @property
    def has_default(self) -> bool:
        return self.default is not None

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attribute = attr

    def __get__(self, obj: Any, owner: type) -> Any:
        if obj is None:
            return self
        values = obj.__dict__.get("_flowplane_params")
        if values is None or self.name not in values:
            raise AttributeError(f"parameter {self.name!r} has no value outside a running flow")
        return values[self.name]

    def resolve_default(self, context: DeployTimeContext) -> Any:
        """The default in its final type; a function default is called once here."""
        value = self.default
        if callable(value):
            try:
                value = value(context)
            except Exception as e:  # user code: report, don't crash with a traceback
                raise ParameterError(
                    f"parameter {self.name!r}: its deploy-time default raised {type(e).__name__}: {e}"
                ) from e
        if value is None:
            return None
        return convert(self.type_name, value, self.name)

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, type={self.type_name})"
