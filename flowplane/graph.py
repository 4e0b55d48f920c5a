"""Read a flow's graph from its source with `ast`, never by running it.

This is what lets the control plane rebuild the graph from an uploaded file
without importing user code. Both `python flow.py run` and the compile Lambda
call `graph_from_source`, so they cannot disagree.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from pydantic import ValidationError

from .config_eval import ConfigExprError, evaluate, references_config
from .manifest import (
    STEP_DECORATORS,
    check_repeated,
    GraphSpec,
    ParameterSpec,
    CondaBaseSpec,
    ProjectSpec,
    PypiBaseSpec,
    ScheduleSpec,
    TriggerOnFinishSpec,
    TriggerSpec,
    describe_errors,
    StepSpec,
)

PARAM_TYPES = {"str": "str", "int": "int", "float": "float", "bool": "bool", "JSONType": "json"}

# Positional arguments, in order (as Metaflow's), of each kind of parameter.
_PARAMETER_ARGS = {
    "Parameter": ("name", "default", "type", "help", "required"),
    "IncludeFile": ("name", "required", "is_text", "encoding", "help"),
}

# What `ast.literal_eval` raises for something that is not a plain constant:
# `{[1]: 2}` parses but raises TypeError (unhashable), deep nesting RecursionError.
_NOT_LITERAL = (ValueError, TypeError, SyntaxError, MemoryError, RecursionError)


class FlowSourceError(Exception):
    """The source cannot be read as a flow (no FlowSpec class, syntax error, ...)."""

    def __init__(self, message: str, lineno: int = 0):
        super().__init__(f"line {lineno}: {message}" if lineno else message)
        self.lineno = lineno


@dataclass(frozen=True)
class ConfigDeclaration:
    """`attribute = Config("name", ...)` as the source says it."""

    name: str
    attribute: str
    required: bool = False
    lineno: int = 0


class _Configs:
    """The flow's configs while reading decorators: their names, and their values when known.

    Without values (a command's help, before --config is parsed) an argument that depends
    on a config is left out silently; with them it is computed by `config_eval`.
    """

    def __init__(self, declared: list[ConfigDeclaration], values: Optional[Mapping[str, Any]]):
        self.values = values
        self.names = {d.name for d in declared} | {d.attribute for d in declared}
        self.env: dict[str, Any] = {}
        if values is not None:
            for d in declared:
                # config_expr("...") names a config by name; `cfg.x` in the class body by attribute.
                self.env[d.name] = self.env[d.attribute] = values.get(d.name)


_NO_CONFIGS = _Configs([], {})


@dataclass
class SourceFlow:
    """What the source says: the graph plus parameters as far as `ast` can see them."""

    graph: GraphSpec
    parameters: list[ParameterSpec]
    class_lineno: int
    # Problems found while reading (bad decorator arguments, ...), as (lineno, message).
    # A message about one step or parameter starts with "step 'x': " or
    # "parameter 'x': " so that lint can name what is at fault.
    problems: list[tuple[int, str]] = field(default_factory=list)
    configs: list[ConfigDeclaration] = field(default_factory=list)


def _name_of(node: ast.AST) -> str:
    """`retry`, `flowplane.retry`, `fp.retry` all read as `retry`."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _literal_kwargs(
    call: ast.AST, lineno: int, what: str, problems: list, configs: "_Configs" = _NO_CONFIGS
) -> dict[str, Any]:
    if not isinstance(call, ast.Call):
        return {}
    out: dict[str, Any] = {}
    for kw in call.keywords:
        if kw.arg is None:
            problems.append((lineno, f"{what}: **kwargs cannot be read from source; name each argument"))
            continue
        try:
            out[kw.arg] = ast.literal_eval(kw.value)
        except _NOT_LITERAL:
            if references_config(kw.value, configs.names):
                if configs.values is None:
                    continue  # computed once the configs are known
                try:
                    out[kw.arg] = evaluate(kw.value, configs.env)
                except ConfigExprError as e:
                    problems.append((lineno, f"{what}: argument {kw.arg!r}: {e}"))
                continue
            problems.append(
                (
                    lineno,
                    f"{what}: argument {kw.arg!r} must be a constant so the control plane can "
                    "read it without running your code",
                )
            )
    if call.args:
        problems.append((lineno, f"{what}: pass arguments by name (keyword=value)"))
    return out


def _find_flow_class(tree: ast.Module, class_name: Optional[str]) -> ast.ClassDef:
    candidates = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(_name_of(b) == "FlowSpec" for b in node.bases):
            candidates.append(node)
    if class_name:
        for c in candidates:
            if c.name == class_name:
                return c
        raise FlowSourceError(f"no class {class_name}(FlowSpec) in the source")
    if not candidates:
        raise FlowSourceError("no class deriving from FlowSpec found in the source")
    if len(candidates) > 1:
        names = ", ".join(c.name for c in candidates)
        raise FlowSourceError(f"more than one FlowSpec class ({names}); a file holds one flow")
    return candidates[0]


def _parse_step(func: ast.FunctionDef, problems: list, configs: _Configs = _NO_CONFIGS) -> StepSpec:
    decorators = []
    for dec in func.decorator_list:
        kind = _name_of(dec)
        if kind in STEP_DECORATORS:
            what = f"step {func.name!r}: @{kind}"
            kwargs = _literal_kwargs(dec, dec.lineno, what, problems, configs)
            try:
                spec = STEP_DECORATORS[kind](**kwargs)
            except ValidationError as e:
                problems.append((dec.lineno, f"{what}: {_short(e)}"))
                continue
            refused = check_repeated(kind, decorators, spec)
            if refused:
                problems.append((dec.lineno, f"step {func.name!r}: {refused}"))
                continue
            decorators.append(spec)
    num_args = len(func.args.args)
    name = func.name
    node = dict(
        name=name,
        type="linear",
        num_args=num_args,
        lineno=func.lineno,
        decorators=decorators,
        doc=ast.get_docstring(func),
    )
    if name == "end":
        node["type"] = "end"
    tail = func.body[-1]
    if isinstance(tail, ast.Expr) and isinstance(tail.value, ast.Call):
        call = tail.value
        f = call.func
        if (
            isinstance(f, ast.Attribute)
            and f.attr == "next"
            and isinstance(f.value, ast.Name)
            and f.value.id == "self"
        ):
            node["has_tail_next"] = True
            node["invalid_tail_next"] = True
            node["tail_next_lineno"] = tail.lineno
            outs = []
            for a in call.args:
                if isinstance(a, ast.Attribute) and isinstance(a.value, ast.Name) and a.value.id == "self":
                    outs.append(a.attr)
                else:
                    outs = None
                    break
            keywords = {}
            for k in call.keywords:
                keywords[k.arg] = k.value.value if isinstance(k.value, ast.Constant) else None
            if outs is not None:
                node["out_funcs"] = outs
                if set(keywords) == {"foreach"}:
                    node["type"] = "foreach"
                    if len(outs) == 1 and isinstance(keywords["foreach"], str):
                        node["foreach_param"] = keywords["foreach"]
                        node["invalid_tail_next"] = False
                elif not keywords:
                    if len(outs) > 1:
                        node["type"] = "split"
                        node["invalid_tail_next"] = False
                    elif len(outs) == 1:
                        if name == "start":
                            node["type"] = "start"
                        elif num_args > 1:
                            node["type"] = "join"
                        else:
                            node["type"] = "linear"
                        node["invalid_tail_next"] = False
    if name != "end" and num_args > 1 and node["type"] == "linear":
        node["type"] = "join"
    # start and end keep their type whatever their tail says (an invalid
    # self.next in start, a self.next in end): lint reports the tail.
    if name == "start" and node["type"] in ("linear", "join"):
        node["type"] = "start"
    if name == "end":
        node["type"] = "end"
    return StepSpec(**node)


_short = describe_errors


def _parse_parameter(target: str, call: ast.Call, problems: list) -> Optional[ParameterSpec]:
    lineno = call.lineno
    kind = _name_of(call)
    kwargs = dict(zip(_PARAMETER_ARGS[kind], call.args))
    kwargs.update({kw.arg: kw.value for kw in call.keywords if kw.arg})
    name_node = kwargs.get("name")
    if not isinstance(name_node, ast.Constant) or not isinstance(name_node.value, str):
        problems.append((lineno, f"parameter {target!r}: its name must be a string constant"))
        return None
    name = name_node.value
    what = f"parameter {name!r}"
    if any(kw.arg is None for kw in call.keywords):
        problems.append((lineno, f"{what}: **kwargs cannot be read from source; name each argument"))
    spec: dict[str, Any] = {"name": name, "attribute": target, "lineno": lineno}
    for key in ("help", "required"):
        if key in kwargs:
            try:
                value = ast.literal_eval(kwargs[key])
            except _NOT_LITERAL:
                problems.append((lineno, f"{what}: argument {key!r} must be a constant"))
                continue
            # Metaflow's None for required means False.
            spec[key] = bool(value) if key == "required" and value is None else value
    if kind == "IncludeFile":
        # Its default is a path, read (and stored) on the client at run or deploy: a
        # deploy-time default whatever its form; its value is the stored file's descriptor.
        if "default" in kwargs:
            spec["has_default"] = spec["deploy_time"] = True
        spec["type"] = "include"
        try:
            return ParameterSpec(**spec)
        except ValidationError as e:
            problems.append((lineno, f"{what}: {_short(e)}"))
            return None
    type_name = None
    if "type" in kwargs:
        type_name = PARAM_TYPES.get(_name_of(kwargs["type"]))
        if type_name is None:
            problems.append((lineno, f"{what}: type must be str, int, float, bool or JSONType"))
    if "default" in kwargs:
        try:
            default = ast.literal_eval(kwargs["default"])
        except _NOT_LITERAL:
            # A function (or any expression): evaluated on the client at deploy time.
            spec["has_default"] = True
            spec["deploy_time"] = True
        else:
            # As Parameter.has_default: an explicit None is no default.
            spec["has_default"] = default is not None
            spec["default"] = default
            if type_name is None and default is not None:
                type_name = _infer_type(default)
                if type_name is None:
                    problems.append(
                        (lineno, f"{what}: cannot infer a type from default {default!r}; pass type=")
                    )
    spec["type"] = type_name or "str"
    try:
        return ParameterSpec(**spec)
    except ValidationError as e:
        problems.append((lineno, f"{what}: {_short(e)}"))
        return None


def _infer_type(value: Any) -> Optional[str]:
    """The type Parameter infers from a default (None when it cannot)."""
    # bool before int: True is an int in Python.
    for t, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str")):
        if isinstance(value, t):
            return name
    if isinstance(value, (dict, list)):
        return "json"
    return None


def _parse_schedule(cls: ast.ClassDef, problems: list, configs: _Configs = _NO_CONFIGS) -> Optional[ScheduleSpec]:
    for dec in cls.decorator_list:
        if _name_of(dec) == "schedule":
            kwargs = _literal_kwargs(dec, dec.lineno, "@schedule", problems, configs)
            try:
                return ScheduleSpec(**kwargs, lineno=dec.lineno)
            except ValidationError as e:
                problems.append((dec.lineno, f"@schedule: {_short(e)}"))
    return None


def _parse_flow_decorator(cls: ast.ClassDef, kind: str, model: Any, problems: list,
                          configs: _Configs = _NO_CONFIGS) -> Any:
    found = None
    for dec in cls.decorator_list:
        if _name_of(dec) != kind:
            continue
        if found is not None:
            problems.append((dec.lineno, f"@{kind} is given twice on the flow"
                             + ("" if kind in ("project", "pypi_base", "conda_base") else "; give all its events in one")))
            continue
        kwargs = _literal_kwargs(dec, dec.lineno, f"@{kind}", problems, configs)
        try:
            found = model(**kwargs, lineno=dec.lineno)
        except ValidationError as e:
            problems.append((dec.lineno, f"@{kind}: {_short(e)}"))
            found = False
    return found or None


def _parameter_assignment(item: ast.stmt) -> tuple[Optional[str], Any]:
    """`alpha = Parameter(...)`, `alpha: float = Parameter(...)` or `data = IncludeFile(...)` -> (target, call)."""
    if isinstance(item, ast.Assign) and len(item.targets) == 1:
        target = item.targets[0]
    elif isinstance(item, ast.AnnAssign) and item.value is not None:
        target = item.target
    else:
        return None, None
    value = item.value
    if isinstance(target, ast.Name) and isinstance(value, ast.Call) and _name_of(value) in _PARAMETER_ARGS:
        return target.id, value
    return None, None


def _config_declaration(item: ast.stmt, problems: list) -> Optional[ConfigDeclaration]:
    """`cfg = Config("cfg", ...)` (or annotated) -> its declaration; anything else None."""
    target, value = None, getattr(item, "value", None)
    if isinstance(item, ast.Assign) and len(item.targets) == 1:
        target = item.targets[0]
    elif isinstance(item, ast.AnnAssign):
        target = item.target
    if not (isinstance(target, ast.Name) and isinstance(value, ast.Call) and _name_of(value) == "Config"):
        return None
    name_node = value.args[0] if value.args else next((k.value for k in value.keywords if k.arg == "name"), None)
    if not isinstance(name_node, ast.Constant) or not isinstance(name_node.value, str):
        problems.append((value.lineno, f"config {target.id!r}: its name must be a string constant"))
        return None
    required = next((k.value for k in value.keywords if k.arg == "required"), None)
    try:
        is_required = bool(ast.literal_eval(required)) if required is not None else False
    except _NOT_LITERAL:
        is_required = False
    return ConfigDeclaration(name=name_node.value, attribute=target.id, required=is_required, lineno=value.lineno)


def _is_step(func: ast.FunctionDef) -> bool:
    return any(_name_of(d) == "step" for d in func.decorator_list)


def read_source_flow(
    source: str, filename: str = "<flow>", class_name: Optional[str] = None, configs: Optional[Mapping[str, Any]] = None
) -> SourceFlow:
    """Parse `source` and return its flow's graph and parameters.

    `configs` (name -> value) are the flow's Config values: decorator arguments that use
    them are computed from them. None: not known yet, such arguments are left out.
    """
    try:
        return _read(source, filename, class_name, configs)
    except (RecursionError, MemoryError):
        # Python's parser gives up on expressions nested some thousands deep (RecursionError,
        # or MemoryError "Parser stack overflowed"): that is a fault of the source.
        raise FlowSourceError(
            "the source nests expressions too deeply for Python's parser; flatten the deepest expression"
        ) from None


def _read(source: str, filename: str, class_name: Optional[str], configs: Optional[Mapping[str, Any]]) -> SourceFlow:
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as e:
        raise FlowSourceError(f"syntax error: {e.msg}", e.lineno or 0) from None
    except ValueError as e:  # "source code string cannot contain null bytes"
        raise FlowSourceError(f"not Python source: {e}") from None
    cls = _find_flow_class(tree, class_name)
    problems: list[tuple[int, str]] = []
    steps: dict[str, StepSpec] = {}
    parameters: list[ParameterSpec] = []
    declared = [d for d in (_config_declaration(i, problems) for i in cls.body) if d is not None]
    config_env = _Configs(declared, configs)
    for item in cls.body:
        if isinstance(item, ast.FunctionDef) and _is_step(item):
            if item.name in steps:
                problems.append(
                    (
                        item.lineno,
                        f"step {item.name!r}: defined twice (first at line {steps[item.name].lineno}); "
                        "the later definition silently replaces the earlier one",
                    )
                )
            steps[item.name] = _parse_step(item, problems, config_env)
        else:
            target, value = _parameter_assignment(item)
            if target is not None:
                p = _parse_parameter(target, value, problems)
                if p is not None:
                    parameters.append(p)
    steps = _link(steps)
    graph = GraphSpec(
        flow_name=cls.name,
        steps=steps,
        schedule=_parse_schedule(cls, problems, config_env),
        trigger=_parse_flow_decorator(cls, "trigger", TriggerSpec, problems, config_env),
        trigger_on_finish=_parse_flow_decorator(cls, "trigger_on_finish", TriggerOnFinishSpec, problems, config_env),
        project=_parse_flow_decorator(cls, "project", ProjectSpec, problems, config_env),
        pypi_base=_parse_flow_decorator(cls, "pypi_base", PypiBaseSpec, problems, config_env),
        conda_base=_parse_flow_decorator(cls, "conda_base", CondaBaseSpec, problems, config_env),
        doc=ast.get_docstring(cls),
    )
    _check_config_names(declared, parameters, problems)
    return SourceFlow(graph=graph, parameters=parameters, class_lineno=cls.lineno, problems=problems, configs=declared)


def _check_config_names(declared: list[ConfigDeclaration], parameters: list[ParameterSpec], problems: list) -> None:
    # Configs and parameters share one namespace in Metaflow (and on the command line here).
    seen: dict[str, int] = {p.name.lower(): p.lineno for p in parameters}
    for d in declared:
        if d.name.lower() in seen:
            problems.append((d.lineno, f"config {d.name!r}: a parameter or config of that name is declared at line {seen[d.name.lower()]}"))
        seen[d.name.lower()] = d.lineno


def graph_from_source(source: str, filename: str = "<flow>", class_name: Optional[str] = None) -> GraphSpec:
    return read_source_flow(source, filename, class_name).graph


def _link(steps: dict[str, StepSpec]) -> dict[str, StepSpec]:
    """Fill in_funcs, split_parents and matching_join, as Metaflow's traversal does."""
    in_funcs: dict[str, list[str]] = {n: [] for n in steps}
    for node in steps.values():
        for out in node.out_funcs:
            if out in in_funcs and node.name not in in_funcs[out]:
                in_funcs[out].append(node.name)
    split_parents: dict[str, list[str]] = {}
    matching_join: dict[str, str] = {}

    # Depth-first, first visit wins, with an explicit stack: a long chain of
    # steps must not meet Python's recursion limit.
    todo: list[tuple[str, list[str]]] = [("start", [])] if "start" in steps else []
    while todo:
        name, parents = todo.pop()
        if name not in steps or name in split_parents:
            continue
        node = steps[name]
        # As in Metaflow, a join keeps the split it closes as its last parent.
        split_parents[name] = list(parents)
        if node.type == "join" and parents:
            matching_join.setdefault(parents[-1], name)
            parents = parents[:-1]
        child_parents = parents + [name] if node.type in ("split", "foreach") else parents
        todo.extend((out, child_parents) for out in reversed(node.out_funcs))
    out = {}
    for n, node in steps.items():
        out[n] = node.model_copy(
            update={
                "in_funcs": in_funcs[n],
                "split_parents": split_parents.get(n, []),
                "matching_join": matching_join.get(n),
            }
        )
    return out
