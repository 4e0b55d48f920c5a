"""A run's parameters as its execution's input: typed as deployed, and small enough for Batch.

The input carries them as one JSON string (the state machine's seed reads it);
the ones not given take the deployed defaults.
"""

from __future__ import annotations

import json
from typing import Any

from flowplane import limits
from flowplane.manifest import ParameterSpec
from flowplane.parameters import ParameterError, convert

from ..errors import BadRequest
from ..sizes import check_limit, json_size


def convert_parameters(specs: list[ParameterSpec], given: Any) -> dict[str, Any]:
    """Values in their deployed types; unknown or mistyped ones are a 400 naming the parameter."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise BadRequest("parameters must be an object of name -> value", field="parameters")
    by_name = {p.name: p for p in specs}
    out: dict[str, Any] = {}
    for name, value in given.items():
        spec = by_name.get(name)
        if spec is None:
            known = ", ".join(sorted(by_name)) or "none"
            raise BadRequest(
                f"unknown parameter {name!r}; the deployed flow's parameters are: {known}",
                field=f"parameters.{name}",
                parameter=name,
            )
        try:
            out[name] = convert(spec.type, value, name)
        except ParameterError as e:
            raise BadRequest(str(e), field=f"parameters.{name}", parameter=name) from None
    for spec in specs:
        if spec.required and spec.name not in out and not spec.has_default:
            raise BadRequest(
                f"parameter {spec.name!r} is required and has no default", field=f"parameters.{spec.name}",
                parameter=spec.name,
            )
    return out


def execution_input(values: dict[str, Any]) -> dict[str, Any]:
    """The seed's shape: parameters as a JSON string; missing ones take the deployed defaults."""
    return {"Parameters": json.dumps(values, sort_keys=True)}


def check_input_size(values: dict[str, Any]) -> None:
    """Refuse now what every task's Batch job could not carry (flowplane/limits.py): the run
    would start, be recorded, and fail at its first task."""
    limit = limits.MAX_EXECUTION_INPUT_BYTES
    why = "a run's input travels in each task's AWS Batch job, which holds 30 KiB"
    for name, value in values.items():
        size = json_size(execution_input({name: value}))
        check_limit(size, limit, f"parameter {name!r} as the run's input", why, field=f"parameters.{name}", parameter=name)
    check_limit(json_size(execution_input(values)), limit, "the run's parameters as its input", why, field="parameters")
