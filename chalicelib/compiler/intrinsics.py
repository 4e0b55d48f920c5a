"""Building Amazon States Language intrinsic-function calls safely."""

from __future__ import annotations

from flowplane.datastore.records import PRODUCTION_RUN_PREFIX

# Inside an intrinsic's string literal these four must be backslash-escaped
# (ASL spec, "Intrinsic Functions": reserved characters ' { } \).
_RESERVED = ("\\", "'", "{", "}")

# Production runs are `sfn-<execution name>`.
RUN_ID_PREFIX = PRODUCTION_RUN_PREFIX
EXECUTION_NAME = "$$.Execution.Name"


def escape_literal(text: str) -> str:
    for ch in _RESERVED:
        text = text.replace(ch, "\\" + ch)
    return text


def format_call(pieces: list[str], args: list[str]) -> str:
    """`States.Format(...)` of literal `pieces` with one path/intrinsic argument between each pair."""
    if len(pieces) != len(args) + 1:
        raise ValueError(f"{len(pieces)} literal pieces need {len(pieces) - 1} arguments, got {len(args)}")
    template = "{}".join(escape_literal(p) for p in pieces)
    return "States.Format(" + ",".join([f"'{template}'", *args]) + ")"


def run_id_expr() -> str:
    return format_call([RUN_ID_PREFIX, ""], [EXECUTION_NAME])
