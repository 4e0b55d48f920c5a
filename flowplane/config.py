"""`Config` and `config_expr`: configuration read once on the client, frozen into a run or deployment.

As in Metaflow 2.13+: `cfg = Config("cfg", default="config.json")` reads the
file (or `--config cfg PATH`, `--config-value cfg JSON`) where `run` or
`step-functions create` is typed; steps read `self.cfg.key`, and decorators may
use `cfg.key` or `config_expr("cfg.key * 2")`. The values travel in the manifest
(production) or on the task's command line (local); the control plane evaluates
decorator arguments from the source with `config_eval`, never running the flow.
"""

from __future__ import annotations

import importlib
import json
from typing import Any, Callable, Iterator, Mapping, Optional, Union

from .parameters import DeployTimeContext

# A config is frozen into the manifest (and every task's command line): keep it small.
MAX_CONFIG_BYTES = 256 * 1024


class ConfigError(ValueError):
    """A config cannot be read or parsed; the message names the config and the file."""


class ConfigValue(dict):
    """A config's value: a read-only dict whose keys also read as attributes (`cfg.a.b`)."""

    def __init__(self, data: Mapping[str, Any]):
        super().__init__({k: _wrap(v) for k, v in data.items()})

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"the config has no key {key!r} (keys: {', '.join(map(str, self)) or 'none'})") from None

    def _immutable(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("a config is read-only: it was frozen when the run started (or the flow was deployed)")

    __setitem__ = __delitem__ = __setattr__ = __delattr__ = _immutable  # type: ignore[assignment]
    clear = pop = popitem = setdefault = update = _immutable  # type: ignore[assignment]

    def __reduce__(self) -> Any:
        # pickle (a step storing part of a config as an artifact) must not go through __setitem__.
        return (ConfigValue, (dict(self),))

    def to_dict(self) -> dict[str, Any]:
        """A plain, mutable copy."""
        return json.loads(json.dumps(self))


def _wrap(value: Any) -> Any:
    if isinstance(value, dict) and not isinstance(value, ConfigValue):
        return ConfigValue(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


class ConfigExpr:
    """What `cfg.key` and `config_expr("...")` are inside the flow's module: a deferred expression.

    Decorators given one skip their import-time check; the argument's value is what the
    graph reader (`graph.py`) computes from the source with the run's config values.
    """

    def __init__(self, expr: str):
        self.expr = expr

    def __getattr__(self, name: str) -> "ConfigExpr":
        if name.startswith("__"):
            raise AttributeError(name)
        return ConfigExpr(f"{self.expr}.{name}")

    def __getitem__(self, key: Any) -> "ConfigExpr":
        return ConfigExpr(f"{self.expr}[{key!r}]")

    def __repr__(self) -> str:
        return f"config_expr({self.expr!r})"


def config_expr(expr: str) -> ConfigExpr:
    """`@resources(cpu=config_expr("cfg.cpu"))`: a decorator argument computed from configs."""
    if not isinstance(expr, str) or not expr.strip():
        raise ConfigError("config_expr takes the expression as a non-empty string")
    from .config_eval import parse_expr

    parse_expr(expr)  # a syntax error shows where it was written
    return ConfigExpr(expr)


def is_deferred(value: Any) -> bool:
    """True when a decorator argument depends on a config (anywhere inside it)."""
    if isinstance(value, ConfigExpr):
        return True
    if isinstance(value, dict):
        return any(is_deferred(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(is_deferred(v) for v in value)
    return False


Source = tuple[str, str]  # ("file", path) or ("value", JSON text): what --config / --config-value gave


class Config:
    """`Config(name, default=path, default_value=..., help=, required=, parser=, plain=)`.

    `default` is a path (or a function of a deploy-time context returning one);
    `default_value` a JSON string, a dict, or a function returning either. Only one of them.
    """

    def __init__(
        self,
        name: str,
        default: Union[str, Callable[[DeployTimeContext], str], None] = None,
        default_value: Union[str, dict, Callable[[DeployTimeContext], Any], None] = None,
        help: Optional[str] = None,
        required: Optional[bool] = None,
        parser: Union[str, Callable[[str], Any], None] = None,
        plain: bool = False,
        **_ignored: Any,
    ) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"Config needs a name that is a Python identifier, got {name!r}")
        if default is not None and default_value is not None:
            raise ConfigError(f"config {name!r}: give default (a path) or default_value, not both")
        self.name = name
        self.default = default
        self.default_value = default_value
        self.help = help
        self.required = bool(required)
        self.parser = parser
        self.plain = bool(plain)
        self.attribute: Optional[str] = None

    def __set_name__(self, owner: type, attr: str) -> None:
        self.attribute = attr

    def __get__(self, obj: Any, owner: type) -> Any:
        if obj is None:
            return self
        values = obj.__dict__.get("_flowplane_configs") or {}
        if self.name not in values:
            raise AttributeError(f"config {self.name!r} has no value outside a running flow")
        value = values[self.name]
        return value if self.plain or not isinstance(value, dict) else ConfigValue(value)

    def __set__(self, obj: Any, value: Any) -> None:
        raise AttributeError(f"self.{self.attribute} is the config {self.name!r}: configs are read-only")

    def __getattr__(self, key: str) -> ConfigExpr:
        # `cfg.cpu` in the class body (a decorator argument): deferred until the values are known.
        if key.startswith("_"):
            raise AttributeError(key)
        return ConfigExpr(f"{self.name}.{key}")

    def __getitem__(self, key: Any) -> ConfigExpr:
        return ConfigExpr(f"{self.name}[{key!r}]")

    def resolve(self, given: Optional[Source], context: DeployTimeContext) -> Any:
        """The value, JSON-safe: from `given`, else the default file, else default_value."""
        if given is not None:
            kind, text = given
            return self._parse(self._read(text) if kind == "file" else text, text if kind == "file" else None)
        default = _call(self.default, context, self.name)
        if default is not None:
            return self._parse(self._read(str(default), is_default=True), str(default))
        value = _call(self.default_value, context, self.name)
        if value is None:
            if self.required:
                raise ConfigError(f"config {self.name!r} is required: give --config {self.name} PATH or --config-value {self.name} JSON")
            return None
        if isinstance(value, str):
            return self._parse(value, None)
        return self._check(value, None)

    def _read(self, path: str, is_default: bool = False) -> str:
        what = "default configuration file" if is_default else "configuration file"
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read(MAX_CONFIG_BYTES + 1)
        except (OSError, UnicodeDecodeError) as e:
            reason = getattr(e, "strerror", None) or str(e)
            raise ConfigError(f"config {self.name!r}: the {what} {path!r} could not be read ({reason})") from None
        if len(text.encode("utf-8")) > MAX_CONFIG_BYTES:
            raise ConfigError(f"config {self.name!r}: {path!r} is larger than {MAX_CONFIG_BYTES // 1024} KiB")
        return text

    def _parse(self, text: str, path: Optional[str]) -> Any:
        where = f" (from {path})" if path else ""
        if self.parser is not None:
            try:
                value = _parser(self.parser)(text)
            except Exception as e:  # the user's parser: report it, don't crash
                raise ConfigError(f"config {self.name!r}{where}: its parser raised {type(e).__name__}: {e}") from None
        elif self.plain:
            value = text
        else:
            try:
                value = json.loads(text)
            except json.JSONDecodeError as e:
                raise ConfigError(
                    f"config {self.name!r}{where} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
                ) from None
        return self._check(value, path)

    def _check(self, value: Any, path: Optional[str]) -> Any:
        where = f" (from {path})" if path else ""
        if not self.plain and not isinstance(value, Mapping):
            raise ConfigError(f"config {self.name!r}{where} must be a JSON object (or declare plain=True), got {type(value).__name__}")
        try:
            text = json.dumps(value)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"config {self.name!r}{where}: its value must be JSON-serializable ({e})") from None
        if len(text) > MAX_CONFIG_BYTES:
            raise ConfigError(f"config {self.name!r}{where} is larger than {MAX_CONFIG_BYTES // 1024} KiB")
        return json.loads(text)

    def __repr__(self) -> str:
        return f"Config({self.name!r})"


def _call(value: Any, context: DeployTimeContext, name: str) -> Any:
    if not callable(value):
        return value
    try:
        return value(context)
    except Exception as e:  # user code: report, don't crash with a traceback
        raise ConfigError(f"config {name!r}: its default function raised {type(e).__name__}: {e}") from None


def _parser(parser: Union[str, Callable[[str], Any]]) -> Callable[[str], Any]:
    if callable(parser):
        return parser
    module, _, attr = parser.rpartition(".")
    fn = getattr(importlib.import_module(module), attr, None) if module else None
    if not callable(fn):
        raise ConfigError(f"parser {parser!r} is not a function (use 'package.module.function')")
    return fn


def flow_configs(flow_cls: type) -> list[Config]:
    """The flow's Config objects, in definition order (subclasses override by attribute)."""
    out: list[Config] = []
    for klass in reversed(flow_cls.__mro__):
        for value in vars(klass).values():
            if isinstance(value, Config):
                out = [c for c in out if c.attribute != value.attribute] + [value]
    return out


def resolve_configs(
    configs: list[Config], given: Mapping[str, Source], context: Callable[[str], DeployTimeContext]
) -> dict[str, Any]:
    """Every config's value by name; `given` from --config/--config-value. All errors at once."""
    names = {c.name for c in configs}
    unknown = sorted(set(given) - names)
    if unknown:
        raise ConfigError(
            f"unknown config(s) {', '.join(map(repr, unknown))}; the flow's configs are: {', '.join(sorted(names)) or 'none'}"
        )
    values: dict[str, Any] = {}
    errors: list[str] = []
    for c in configs:
        try:
            values[c.name] = c.resolve(given.get(c.name), context(c.name))
        except ConfigError as e:
            errors.append(str(e))
    if errors:
        raise ConfigError("; ".join(errors))
    return values


def iter_sources(files: Any, values: Any) -> Iterator[tuple[str, Source]]:
    """(name, source) from click's `--config NAME PATH` and `--config-value NAME JSON` pairs."""
    for name, path in files or ():
        yield name, ("file", path)
    for name, text in values or ():
        yield name, ("value", text)
