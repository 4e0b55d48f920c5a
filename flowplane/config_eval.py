"""Evaluate a config expression (`cfg.cpu`, `config_expr("cfg.n * 2")`) without running user code.

The control plane reads decorators from the source with `ast` and must never
import or execute what was uploaded, so a decorator argument that depends on a
`Config` is evaluated here by a small interpreter over the syntax tree: config
names, attribute and item access, literals, arithmetic, comparisons, `and`/`or`,
`x if c else y` and a few pure built-ins. Metaflow evaluates such expressions
with `eval` in the flow module's globals; anything beyond this subset is
refused with a message that names the construct.
"""

from __future__ import annotations

import ast
import operator
from typing import Any, Callable, Mapping

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
# Pure functions of JSON values: nothing here reaches the file system, the network or the interpreter.
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "int": int, "float": float, "str": str, "bool": bool, "len": len,
    "min": min, "max": max, "abs": abs, "round": round,
}
_METHODS = {"get", "lower", "upper", "strip", "keys", "values", "items"}


class ConfigExprError(ValueError):
    """A config expression cannot be evaluated; the message says what and why."""


def parse_expr(text: str) -> ast.expr:
    """The syntax tree of the text given to `config_expr(...)`."""
    try:
        return ast.parse(text.strip(), mode="eval").body
    except SyntaxError as e:
        raise ConfigExprError(f"config expression {text!r} is not a Python expression ({e.msg})") from None


def evaluate(node: ast.AST, configs: Mapping[str, Any]) -> Any:
    """The value of `node`, where a bare name is a config (by name) and `config_expr("...")` nests."""
    return _Evaluator(configs).visit(node)


def references_config(node: ast.AST, names: set[str]) -> bool:
    """True when `node` mentions a config by name or through `config_expr(...)`."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id in names:
            return True
        if isinstance(sub, ast.Call) and _callee(sub) == "config_expr":
            return True
    return False


def _callee(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


class _Evaluator:
    def __init__(self, configs: Mapping[str, Any]):
        self.configs = configs

    def visit(self, node: ast.AST) -> Any:
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is None:
            raise ConfigExprError(
                f"{ast.unparse(node)!r}: {type(node).__name__} is not allowed in a config expression "
                "(config names, .attr, [key], literals, arithmetic, comparisons and int/float/str/len/min/max)"
            )
        return method(node)

    def visit_Constant(self, node: ast.Constant) -> Any:
        return node.value

    def visit_Name(self, node: ast.Name) -> Any:
        if node.id in self.configs:
            return self.configs[node.id]
        raise ConfigExprError(f"{node.id!r} is not a config of this flow (known: {', '.join(sorted(self.configs)) or 'none'})")

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        return _member(self.visit(node.value), node.attr, ast.unparse(node))

    def visit_Subscript(self, node: ast.Subscript) -> Any:
        return _member(self.visit(node.value), self.visit(node.slice), ast.unparse(node))

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        op = _BINARY.get(type(node.op))
        if op is None:
            raise ConfigExprError(f"{ast.unparse(node)!r}: operator not allowed in a config expression")
        return _apply(op, ast.unparse(node), self.visit(node.left), self.visit(node.right))

    def visit_UnaryOp(self, node: ast.UnaryOp) -> Any:
        op = _UNARY.get(type(node.op))
        if op is None:
            raise ConfigExprError(f"{ast.unparse(node)!r}: operator not allowed in a config expression")
        return _apply(op, ast.unparse(node), self.visit(node.operand))

    def visit_BoolOp(self, node: ast.BoolOp) -> Any:
        value: Any = None
        for sub in node.values:
            value = self.visit(sub)
            if isinstance(node.op, ast.And) and not value or isinstance(node.op, ast.Or) and value:
                return value
        return value

    def visit_Compare(self, node: ast.Compare) -> Any:
        left = self.visit(node.left)
        for op_node, right_node in zip(node.ops, node.comparators):
            right = self.visit(right_node)
            if not _apply(_COMPARE[type(op_node)], ast.unparse(node), left, right):
                return False
            left = right
        return True

    def visit_IfExp(self, node: ast.IfExp) -> Any:
        return self.visit(node.body) if self.visit(node.test) else self.visit(node.orelse)

    def visit_List(self, node: ast.List) -> Any:
        return [self.visit(e) for e in node.elts]

    def visit_Tuple(self, node: ast.Tuple) -> Any:
        return tuple(self.visit(e) for e in node.elts)

    def visit_Dict(self, node: ast.Dict) -> Any:
        if any(k is None for k in node.keys):
            raise ConfigExprError(f"{ast.unparse(node)!r}: ** unpacking is not allowed in a config expression")
        return {self.visit(k): self.visit(v) for k, v in zip(node.keys, node.values)}  # type: ignore[arg-type]

    def visit_JoinedStr(self, node: ast.JoinedStr) -> Any:
        return "".join(str(self.visit(v)) for v in node.values)

    def visit_FormattedValue(self, node: ast.FormattedValue) -> Any:
        if node.format_spec is not None:
            return format(self.visit(node.value), self.visit(node.format_spec))
        return self.visit(node.value)

    def visit_Call(self, node: ast.Call) -> Any:
        name = _callee(node)
        if name == "config_expr":
            if len(node.args) != 1 or node.keywords or not isinstance(node.args[0], ast.Constant) or not isinstance(node.args[0].value, str):
                raise ConfigExprError(f"{ast.unparse(node)!r}: config_expr takes one string constant")
            return self.visit(parse_expr(node.args[0].value))
        if node.keywords:
            raise ConfigExprError(f"{ast.unparse(node)!r}: keyword arguments are not allowed in a config expression")
        args = [self.visit(a) for a in node.args]
        if isinstance(node.func, ast.Name) and name in _FUNCTIONS:
            return _apply(_FUNCTIONS[name], ast.unparse(node), *args)
        if isinstance(node.func, ast.Attribute) and name in _METHODS:
            target = self.visit(node.func.value)
            method = getattr(target, name, None)
            if method is None or not isinstance(target, (str, dict)):
                raise ConfigExprError(f"{ast.unparse(node)!r}: {type(target).__name__} has no method {name}()")
            result = _apply(method, ast.unparse(node), *args)
            return list(result) if name in ("keys", "values", "items") else result
        raise ConfigExprError(
            f"{ast.unparse(node)!r}: calling {name or 'this'}() is not allowed in a config expression "
            f"(allowed: {', '.join(sorted(_FUNCTIONS))} and .{', .'.join(sorted(_METHODS))}())"
        )


def _member(value: Any, key: Any, text: str) -> Any:
    try:
        if isinstance(value, dict):
            return value[key]
        if isinstance(value, (list, tuple, str)) and isinstance(key, int):
            return value[key]
    except (KeyError, IndexError):
        raise ConfigExprError(f"{text!r}: no {key!r} in the config") from None
    raise ConfigExprError(f"{text!r}: a {type(value).__name__} has no member {key!r}")


def _apply(fn: Callable[..., Any], text: str, *args: Any) -> Any:
    try:
        return fn(*args)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError) as e:
        raise ConfigExprError(f"{text!r} failed: {e}") from None
