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
from .manifest import STEP_DECORATORS, ScheduleSpec, check_repeated


class DecoratorArgumentError(TypeError):
    """A decorator got arguments it cannot use."""


def _validated(model: Any, what: str, kwargs: dict[str, Any]) -> Any:
    try:
        return model(**kwargs)
    except ValidationError as e:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {err['msg']}" for err in e.errors()
        )
        raise DecoratorArgumentError(f"{what}: {details}") from None


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
