"""The parameter values a task runs with, checked against the flow's parameters.

Locally the runtime passes every value (`--params-json`); on Batch they come
from the Step Functions execution input, whose "Parameters" is a JSON string,
and the ones left out take the defaults deployed in the package's manifest.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from .. import job
from ..manifest import ParameterSpec
from ..parameters import Parameter, ParameterError, convert
from .errors import TaskSetupError


def specs_from_parameters(params: list[Parameter]) -> list[ParameterSpec]:
    """ParameterSpecs for a flow's Parameter objects; deploy-time defaults stay unevaluated."""
    out = []
    for p in params:
        static = p.has_default and not p.is_deploy_time
        try:
            default = convert(p.type_name, p.default, p.name) if static else None
        except ParameterError as e:
            raise TaskSetupError(f"the default of {e}") from None
        out.append(
            ParameterSpec(
                name=p.name,
                attribute=p.attribute or p.name,
                type=p.type_name,
                required=p.required,
                has_default=static,
                default=default,
                deploy_time=p.is_deploy_time,
            )
        )
    return out


def resolve(specs: list[ParameterSpec], given: dict[str, Any]) -> dict[str, Any]:
    """Values for every parameter: given ones converted, missing ones defaulted."""
    known = {s.name for s in specs}
    unknown = sorted(set(given) - known)
    if unknown:
        names = ", ".join(repr(n) for n in unknown)
        valid = ", ".join(sorted(known)) or "none"
        raise TaskSetupError(f"unknown parameter(s) {names}; the flow's parameters are: {valid}")
    values: dict[str, Any] = {}
    for spec in specs:
        if spec.name in given and given[spec.name] is not None:
            try:
                values[spec.name] = convert(spec.type, given[spec.name], spec.name)
            except ParameterError as e:
                raise TaskSetupError(str(e)) from None
        elif spec.has_default:
            values[spec.name] = spec.default
        elif spec.deploy_time:
            raise TaskSetupError(
                f"parameter {spec.name!r} has no value: its default is computed at the start of a run "
                "(or at deploy), so the task must be given it"
            )
        elif spec.required:
            raise TaskSetupError(f"the required parameter {spec.name!r} has no value")
        else:
            values[spec.name] = None
    return values


def with_included_files(specs: list[ParameterSpec], values: dict[str, Any], storage: Any, flow: str) -> dict[str, Any]:
    """The values a step sees: each IncludeFile's descriptor replaced by the file's content."""
    from ..datastore.includes import IncludeError, load_include

    out = dict(values)
    for spec in specs:
        if spec.type == "include" and out.get(spec.name) is not None:
            try:
                out[spec.name] = load_include(storage, flow, out[spec.name], spec.name)
            except IncludeError as e:
                raise TaskSetupError(str(e)) from None
    return out


def from_execution_input(text: str) -> dict[str, Any]:
    """The "Parameters" of a Step Functions execution input (a JSON string, or an object)."""
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as e:
        raise TaskSetupError(f"{job.EXECUTION_INPUT} is not JSON ({e.msg})") from None
    if not isinstance(data, dict):
        raise TaskSetupError(f"{job.EXECUTION_INPUT} must be a JSON object")
    params: Any = data.get("Parameters", {})
    if isinstance(params, str):
        try:
            params = json.loads(params) if params.strip() else {}
        except json.JSONDecodeError as e:
            raise TaskSetupError(f'the execution input\'s "Parameters" is not a JSON string of an object ({e.msg})') from None
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise TaskSetupError('the execution input\'s "Parameters" must be a JSON object of parameter values')
    return params


def from_json_option(text: str, option: str = "--params-json", what: str = "parameter values") -> dict[str, Any]:
    """A JSON object given on the task's command line (--params-json, --configs-json)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise TaskSetupError(f"{option} is not JSON ({e.msg})") from None
    if not isinstance(data, dict):
        raise TaskSetupError(f"{option} must be a JSON object of {what}")
    return data


def artifact_name(spec: ParameterSpec) -> str:
    """Parameters are stored as artifacts under their name, as Metaflow does."""
    return spec.name


def given_values(params_json: Optional[str], execution_input: Optional[str]) -> Optional[dict[str, Any]]:
    if params_json is not None:
        return from_json_option(params_json)
    if execution_input is not None:
        return from_execution_input(execution_input)
    return None
