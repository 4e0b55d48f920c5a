"""Rebuild a flow from its uploaded source and hold the manifest to it.

The control plane trusts only what it can read itself: the graph comes from
the source through the SDK's `ast` reader (the code is never imported), the
`--with` decorators from the manifest's options are applied to it, and the
manifest must describe exactly that graph and those parameters. The flow must
also pass the SDK's lint and carry a schedule AWS would accept.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import flowplane
from flowplane import limits
from flowplane.graph import FlowSourceError, SourceFlow, read_source_flow
from flowplane.manifest import GraphSpec, Manifest, ParameterSpec, compatible, supported_range
from flowplane.parameters import ParameterError, convert, shown

from ..errors import BadRequest
from ..keys import FLOW_NAME, STEP_NAME
from .schedules import schedule_expression
from ..sizes import check_limit, json_size


def read_source(manifest: Manifest, source_text: str) -> SourceFlow:
    try:
        # Decorator arguments that use a Config are computed from the values frozen in the manifest.
        return read_source_flow(source_text, manifest.flow_file, manifest.flow_name, manifest.configs)
    except FlowSourceError as e:
        raise BadRequest(
            f"{manifest.flow_file}: {e}", field="flow_file", line=e.lineno or None
        ) from None


def check_lint(manifest: Manifest, source: SourceFlow) -> None:
    from flowplane.lint import lint

    # Lint what will run: the source's graph with the `--with` decorators applied.
    deployed = dataclasses.replace(source, graph=source.graph.with_decorators(list(manifest.options.with_decorators)))
    errors = lint(deployed)
    if not errors:
        return
    first = errors[0]
    count = f"{len(errors)} error" + ("s" if len(errors) != 1 else "")
    raise BadRequest(
        f"{manifest.flow_file}: {source.graph.flow_name} fails lint ({count}): {first}",
        step=first.step,
        line=first.lineno or None,
        rule=first.rule,
        problems=[
            {"rule": e.rule, "message": e.message, "step": e.step, "parameter": e.parameter, "line": e.lineno}
            for e in errors
        ],
    )


def _describe(value: Any) -> str:
    return repr(value) if value not in (None, [], {}) else "nothing"


def check_graph(manifest: Manifest, expected: GraphSpec, source: SourceFlow) -> None:
    got, want = manifest.graph.structure(), expected.structure()
    prefix = "the manifest disagrees with the flow's source"
    if manifest.graph.flow_name != manifest.flow_name:
        raise BadRequest(
            f"{prefix}: the manifest's graph is {manifest.graph.flow_name!r}, its flow is {manifest.flow_name!r}",
            field="graph.flow_name",
        )
    if got["flow_name"] != want["flow_name"]:
        raise BadRequest(f"{prefix}: flow {got['flow_name']!r} vs {want['flow_name']!r}", field="graph.flow_name")
    if got["schedule"] != want["schedule"]:
        raise BadRequest(
            f"{prefix}: schedule {_describe(got['schedule'])} in the manifest, {_describe(want['schedule'])} in the source",
            field="graph.schedule",
            line=source.class_lineno,
        )
    for name in sorted(set(got["steps"]) | set(want["steps"])):
        if name not in want["steps"]:
            raise BadRequest(f"{prefix}: step {name!r} is in the manifest but not in the source", step=name)
        if name not in got["steps"]:
            raise BadRequest(
                f"{prefix}: step {name!r} is in the source but not in the manifest",
                step=name,
                line=expected.steps[name].lineno,
            )
        for key, value in want["steps"][name].items():
            if got["steps"][name].get(key) != value:
                raise BadRequest(
                    f"{prefix}: step {name!r} has {key} {_describe(got['steps'][name].get(key))} in the manifest "
                    f"but {_describe(value)} in the source",
                    step=name,
                    field=f"graph.steps.{name}.{key}",
                    line=expected.steps[name].lineno,
                )


def check_parameters(manifest: Manifest, source: SourceFlow) -> None:
    prefix = "the manifest disagrees with the flow's source"
    declared = {p.name: p for p in source.parameters}
    given = {p.name: p for p in manifest.parameters}
    if len(given) != len(manifest.parameters):
        twice = sorted({p.name for p in manifest.parameters if sum(q.name == p.name for q in manifest.parameters) > 1})
        raise BadRequest(f"{prefix}: the manifest lists parameter {twice[0]!r} twice", field=f"parameters.{twice[0]}")
    for name in given:
        if name not in declared:
            raise BadRequest(f"{prefix}: parameter {name!r} is not in the source", field=f"parameters.{name}")
    for name, p in declared.items():
        if name not in given:
            raise BadRequest(
                f"{prefix}: parameter {name!r} is in the source but not in the manifest",
                field=f"parameters.{name}",
                line=p.lineno,
            )
        m = given[name]
        for attr in ("type", "attribute", "required"):
            if getattr(m, attr) != getattr(p, attr):
                raise BadRequest(
                    f"{prefix}: parameter {name!r} has {attr} {getattr(m, attr)!r} in the manifest "
                    f"but {getattr(p, attr)!r} in the source",
                    field=f"parameters.{name}.{attr}",
                    line=p.lineno,
                )
        _check_default(m, p)


def check_version(manifest: Manifest) -> None:
    """The SDK that built the package must be one this control plane (and its task image) runs."""
    if not compatible(manifest.flowplane_version, flowplane.__version__):
        supported = supported_range(flowplane.__version__)
        raise BadRequest(
            f"the package was built with flowplane {manifest.flowplane_version}; this control plane takes "
            f"packages of flowplane {supported} (it runs {flowplane.__version__}): deploy with a flowplane in that range",
            field="flowplane_version",
            supported=supported,
        )


def check_names(source: SourceFlow) -> None:
    """Run records key on the flow's and its steps' names: ones they cannot hold are refused now,
    not when the first run's events cannot be recorded."""
    flow = source.graph.flow_name
    if not FLOW_NAME.match(flow):
        raise BadRequest(
            f"the flow's class name {flow[:80]!r} must be 1-128 ASCII letters, digits or '_' "
            "(run records are keyed by it)",
            field="flow_name",
            line=source.class_lineno,
            limit=128,
        )
    for step in source.graph:
        if not STEP_NAME.match(step.name):
            raise BadRequest(
                f"step {step.name[:80]!r}: a step's name must be 1-80 ASCII letters, digits or '_' "
                "(run records are keyed by it)",
                step=step.name[:80],
                line=step.lineno or None,
                limit=80,
            )


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _check_default(m: ParameterSpec, p: ParameterSpec) -> None:
    """The manifest's default must be the source's literal exactly, or a deploy-time value of the type."""
    where = {"field": f"parameters.{p.name}.default", "line": p.lineno or None}
    for attr in ("has_default", "deploy_time"):
        if getattr(m, attr) != getattr(p, attr):
            raise BadRequest(
                f"the manifest disagrees with the flow's source: parameter {p.name!r} has {attr} "
                f"{getattr(m, attr)!r} in the manifest but {getattr(p, attr)!r} in the source",
                field=f"parameters.{p.name}.{attr}",
                line=p.lineno or None,
            )
    if not m.has_default:
        return
    try:
        typed = convert(m.type, m.default, m.name)
    except ParameterError as e:
        raise BadRequest(f"the manifest's default is not valid: {e}", **where) from None
    if _canonical(typed) != _canonical(m.default):
        raise BadRequest(
            f"the manifest's default of parameter {p.name!r} is not a {m.type} (it would read as {shown(typed)})", **where
        )
    if not p.deploy_time and _canonical(convert(p.type, p.default, p.name)) != _canonical(m.default):
        # The source's literal is what the SDK evaluates: any other value is not from this source.
        raise BadRequest(
            f"the manifest disagrees with the flow's source: parameter {p.name!r} defaults to "
            f"{shown(p.default)} in the source, not to {shown(m.default)}",
            **where,
        )


def check_parameter_sizes(manifest: Manifest) -> None:
    check_limit(
        json_size([p.model_dump(mode="json") for p in manifest.parameters]),
        limits.MAX_PARAMETERS_BYTES,
        "the flow's parameters (names, help and defaults) as JSON",
        "they are kept in the flow's DynamoDB item",
        field="parameters",
    )


def check_configs(manifest: Manifest, source: SourceFlow) -> None:
    prefix = "the manifest disagrees with the flow's source"
    declared = {c.name: c for c in source.configs}
    for name in manifest.configs:
        if name not in declared:
            raise BadRequest(f"{prefix}: config {name!r} is not in the source", field=f"configs.{name}")
    for name, c in declared.items():
        if name not in manifest.configs:
            raise BadRequest(
                f"{prefix}: config {name!r} is in the source but has no value in the manifest",
                field=f"configs.{name}",
                line=c.lineno,
            )


def check_flow(manifest: Manifest, source_text: str) -> SourceFlow:
    """The flow as the source says it is, once the manifest is known to agree; else a 400."""
    check_version(manifest)
    source = read_source(manifest, source_text)
    check_names(source)
    # Before lint: decorator arguments computed from a config missing from the manifest would fail it obscurely.
    check_configs(manifest, source)
    # A bad schedule is named precisely here rather than as one lint error among others.
    schedule_expression(source.graph.schedule)
    check_lint(manifest, source)
    expected = source.graph.with_decorators(list(manifest.options.with_decorators))
    check_graph(manifest, expected, source)
    check_parameters(manifest, source)
    check_parameter_sizes(manifest)
    return source
