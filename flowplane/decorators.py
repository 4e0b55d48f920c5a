"""Step and flow decorators.

They validate their arguments with the manifest's models at import time, so a
typo fails where the user wrote it; the graph reader validates the same
arguments from the source with the same models.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable, Optional

from pydantic import ValidationError

from .config import is_deferred
from .manifest import (
    STEP_DECORATORS,
    CondaBaseSpec,
    PypiBaseSpec,
    ProjectSpec,
    ScheduleSpec,
    TriggerOnFinishSpec,
    TriggerSpec,
    check_repeated,
    describe_errors,
)


class DecoratorArgumentError(TypeError):
    """A decorator got arguments it cannot use."""


def _validated(model: Any, what: str, kwargs: dict[str, Any]) -> Any:
    try:
        return model(**kwargs)
    except ValidationError as e:
        raise DecoratorArgumentError(f"{what}: {describe_errors(e)}") from None


def step(func: Callable) -> Callable:
    """Mark a method of a FlowSpec as a step."""
    func.is_step = True  # type: ignore[attr-defined]
    if not hasattr(func, "decorators"):
        func.decorators = []  # type: ignore[attr-defined]
    return func


def _step_decorator(kind: str) -> Callable:
    model = STEP_DECORATORS[kind]

    def decorator(func: Optional[Callable] = None, **kwargs: Any) -> Any:
        if any(is_deferred(v) for v in kwargs.values()):
            # `cfg.cpu` / config_expr(...): checked when the graph is read with the config values.
            spec: Any = SimpleNamespace(kind=kind, deferred=kwargs)
        else:
            spec = _validated(model, f"@{kind}", kwargs)

        def attach(f: Callable) -> Callable:
            existing = list(getattr(f, "decorators", []))
            refused = check_repeated(kind, existing, spec)
            if refused:
                raise DecoratorArgumentError(f"{refused} on step {f.__name__!r}")
            f.decorators = [*existing, spec]  # type: ignore[attr-defined]
            return f

        if func is not None:
            if not callable(func):
                raise DecoratorArgumentError(f"@{kind} takes keyword arguments only")
            return attach(func)
        return attach

    decorator.__name__ = kind
    decorator.__doc__ = model.__doc__
    return decorator


retry = _step_decorator("retry")
catch = _step_decorator("catch")
timeout = _step_decorator("timeout")
resources = _step_decorator("resources")
batch = _step_decorator("batch")
environment = _step_decorator("environment")
secrets = _step_decorator("secrets")
card = _step_decorator("card")
pypi = _step_decorator("pypi")
conda = _step_decorator("conda")


def schedule(cls: Optional[type] = None, **kwargs: Any) -> Any:
    """`@schedule(hourly=True)`, `@schedule(cron='0 10 * * ? *')`; no argument means daily."""
    deferred = any(is_deferred(v) for v in kwargs.values())
    # A config-valued argument is computed when the graph is read with the config values.
    spec = SimpleNamespace(deferred=kwargs) if deferred else _validated(ScheduleSpec, "@schedule", kwargs)

    def attach(c: type) -> type:
        c._flowplane_schedule = spec  # type: ignore[attr-defined]
        return c

    if cls is not None:
        return attach(cls)
    return attach


def _flow_decorator(kind: str, model: Any, attribute: str, doc: str, checked_by_lint: bool = False) -> Callable:
    """`checked_by_lint`: a bad argument is left to lint (which names its line: `check`, and before
    `run` and `create`) instead of failing the flow's import."""

    def decorator(cls: Optional[type] = None, **kwargs: Any) -> Any:
        if cls is not None and not isinstance(cls, type):
            raise DecoratorArgumentError(f"@{kind} takes keyword arguments only")
        if any(callable(v) for v in (kwargs.get("event"), kwargs.get("flow"))) or any(
            callable(v) for v in (kwargs.get("events") or kwargs.get("flows") or [])
        ):
            # Metaflow evaluates a callable at deploy time; here the control plane reads the
            # decorator from source without running it, so the names must be written out.
            raise DecoratorArgumentError(f"@{kind}: name the events as constants, not functions")
        deferred = any(is_deferred(v) for v in kwargs.values())
        # A config-valued argument is computed when the graph is read with the config values.
        if deferred or checked_by_lint:
            spec: Any = SimpleNamespace(deferred=kwargs)
        else:
            spec = _validated(model, f"@{kind}", kwargs)

        def attach(c: type) -> type:
            setattr(c, attribute, spec)
            return c

        return attach(cls) if cls is not None else attach

    decorator.__name__ = kind
    decorator.__doc__ = doc
    return decorator


trigger = _flow_decorator(
    "trigger", TriggerSpec, "_flowplane_trigger",
    "`@trigger(event='data_updated')`, `@trigger(events=[...])`, with Metaflow's parameter mappings: "
    "a deployed flow starts when the events are published (`flowplane.integrations.Event`).",
)
trigger_on_finish = _flow_decorator(
    "trigger_on_finish", TriggerOnFinishSpec, "_flowplane_trigger_on_finish",
    "`@trigger_on_finish(flow='FirstFlow')` or `(flows=[...])`: a deployed flow starts when the "
    "upstream flows' production runs succeed.",
)

project = _flow_decorator(
    "project", ProjectSpec, "_flowplane_project",
    "`@project(name='fraud')`: the flow belongs to a project, deployed side by side per branch "
    "(`user.<you>`, `--branch NAME`, `--production`) as `<project>.<branch>.<FlowName>`.",
    checked_by_lint=True,
)

pypi_base = _flow_decorator(
    "pypi_base", PypiBaseSpec, "_flowplane_pypi_base",
    "`@pypi_base(packages={...}, python='3.11', disabled=False)`: the packages every step's environment "
    "starts from (a step's @pypi adds to them); needs `--environment=pypi`.",
)
conda_base = _flow_decorator(
    "conda_base", CondaBaseSpec, "_flowplane_conda_base",
    "`@conda_base(packages={...}, libraries={...}, python=..., disabled=False)`: as @pypi_base, resolved "
    "from the package index as wheels; needs `--environment=conda`.",
)


def parse_with_option(value: str) -> Any:
    """`--with retry` or `--with retry:times=2,minutes_between_retries=0`."""
    kind, _, rest = value.partition(":")
    kind = kind.strip()
    if kind not in STEP_DECORATORS:
        known = ", ".join(sorted(STEP_DECORATORS))
        raise DecoratorArgumentError(f"--with {value!r}: unknown decorator {kind!r} (known: {known})")
    kwargs: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, raw = part.partition("=")
        if not eq:
            raise DecoratorArgumentError(f"--with {value!r}: expected key=value, got {part!r}")
        kwargs[key.strip()] = _coerce(raw.strip())
    return _validated(STEP_DECORATORS[kind], f"--with {kind}", kwargs)


def _coerce(raw: str) -> Any:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    for conv in (int, float):
        try:
            return conv(raw)
        except ValueError:
            pass
    return raw
