"""JSON every reader agrees on: finite numbers, 64-bit integers, bounded nesting.

Python's `json` accepts `NaN`, `Infinity` and `1e999` (as inf) and writes them
back as `NaN`/`Infinity`, which is not JSON: Step Functions, the recorder and
the Client API would each read such a value differently, or not at all. A
5,000-digit integer overflows every reader but Python's, and Python's own
stops at 4,300 digits. Nesting 100,000 deep exhausts the recursion of any
reader. Parameter values and request bodies are held to this subset, checked
once here, so what is accepted round-trips through every hop unchanged.
"""

from __future__ import annotations

import json
import math
from typing import Any, Optional, Union

# Deep enough for any real configuration; shallow enough for every recursive reader.
MAX_DEPTH = 64
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
# Longer digit strings are refused unread (int() on them is quadratic, and limited).
_MAX_INT_DIGITS = 20

Path = tuple[Union[str, int], ...]


class UnsafeJSON(ValueError):
    """A value outside the subset; `path` is where in the document (keys and indices)."""

    def __init__(self, message: str, path: Path = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


class _Unsafe:
    """A number parsed but not representable: refused, with its place, by `check`."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _parse_float(text: str) -> Any:
    value = float(text)
    return value if math.isfinite(value) else _Unsafe(text)


def _parse_int(text: str) -> Any:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        return _Unsafe(text)
    value = int(text)
    return value if INT_MIN <= value <= INT_MAX else _Unsafe(text)


def _short(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def loads(text: Union[str, bytes]) -> Any:
    """Parse JSON, refusing what `check` refuses; a ValueError (UnsafeJSON) says where."""
    try:
        value = json.loads(text, parse_float=_parse_float, parse_int=_parse_int, parse_constant=_Unsafe)
    except RecursionError:
        raise UnsafeJSON(f"it is nested more than {MAX_DEPTH} levels deep (the limit)") from None
    check(value)
    return value


def where(path: Path) -> str:
    return ".".join(str(p) for p in path)


def check(value: Any, path: Path = ()) -> None:
    """Raise UnsafeJSON for a non-finite or non-64-bit number, or nesting past MAX_DEPTH."""
    stack: list[tuple[Any, Path, int]] = [(value, path, 0)]
    while stack:
        item, at, depth = stack.pop()
        if isinstance(item, (dict, list, tuple)):  # a tuple: a literal default read from source
            if depth >= MAX_DEPTH:
                raise UnsafeJSON(f"it is nested more than {MAX_DEPTH} levels deep (the limit)", at)
            children = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in children:
                if isinstance(item, dict) and not isinstance(key, str):
                    raise UnsafeJSON(f"object keys must be strings, not {type(key).__name__}", at)
                stack.append((child, (*at, key), depth + 1))
        elif isinstance(item, _Unsafe):
            raise UnsafeJSON(_number_problem(item.text), at)
        elif isinstance(item, float) and not math.isfinite(item):
            raise UnsafeJSON(_number_problem(repr(item)), at)
        elif isinstance(item, int) and not isinstance(item, bool) and not INT_MIN <= item <= INT_MAX:
            raise UnsafeJSON(_number_problem(f"an integer of {len(str(abs(item)))} digits"), at)
        elif not (item is None or isinstance(item, (str, int, float, bool))):
            raise UnsafeJSON(f"{type(item).__name__} is not a JSON value", at)


def _number_problem(text: str) -> str:
    return (
        f"{_short(text)} is not a number JSON can carry: numbers must be finite "
        f"(no NaN or Infinity) and integers within {INT_MIN}..{INT_MAX}"
    )


def dumps(value: Any, indent: Optional[int] = None) -> str:
    """Strict JSON text of a checked value (never NaN or Infinity)."""
    return json.dumps(value, allow_nan=False, indent=indent)
