"""Which steps of a resumed run may be cloned from the origin run, and which must run again.

Metaflow's rule (metaflow/runtime.py, NativeRuntime): a task is cloned when the
origin run has a successful task at the same place (step and foreach indices),
every task it takes its inputs from was cloned too, and its step is neither the
step given to `resume STEP` nor downstream of it. Everything else runs anew with
the current code. Pure functions over the two graphs and the origin's task
statuses, so every refusal is decided before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..manifest import GraphSpec, StepSpec


class ResumeError(Exception):
    """`resume` cannot start from this origin; nothing was written."""


# What must agree between the origin's graph and the current one for a step to be cloned.
_SHAPE = ("type", "in_funcs", "out_funcs", "foreach_param", "split_parents", "matching_join")


@dataclass(frozen=True)
class ResumePlan:
    # Steps whose successful origin tasks may be cloned (their inputs permitting).
    cloneable: frozenset[str]
    # Steps that run anew whatever the origin holds: STEP and everything after it.
    rerun: frozenset[str]


def downstream(graph: GraphSpec, step: str) -> set[str]:
    """`step` and every step reachable from it."""
    return _reachable(graph, [step], "out_funcs")


def upstream(graph: GraphSpec, step: str) -> set[str]:
    """Every step `step` is reachable from (not `step` itself)."""
    return _reachable(graph, list(graph[step].in_funcs), "in_funcs")


def _reachable(graph: GraphSpec, frontier: list[str], edges: str) -> set[str]:
    """The steps of `frontier` and every step reached from them along `edges` (a node's
    `out_funcs` or `in_funcs`)."""
    seen: set[str] = set()
    while frontier:
        name = frontier.pop()
        if name in seen or name not in graph:
            continue
        seen.add(name)
        frontier.extend(getattr(graph[name], edges))
    return seen


def _shape(node: StepSpec) -> dict[str, object]:
    return {field: getattr(node, field) for field in _SHAPE}


def graph_differences(origin: GraphSpec, current: GraphSpec) -> dict[str, str]:
    """Step name -> how it differs between the origin's graph and the current one."""
    out: dict[str, str] = {}
    for name in sorted(set(origin.steps) | set(current.steps)):
        if name not in current:
            out[name] = "not in the current code"
        elif name not in origin:
            out[name] = "new in the current code"
        else:
            before, now = _shape(origin[name]), _shape(current[name])
            changed = [f"{k}: {before[k]!r} -> {now[k]!r}" for k in _SHAPE if before[k] != now[k]]
            if changed:
                out[name] = "; ".join(changed)
    return out


def plan_resume(
    current: GraphSpec,
    origin: GraphSpec,
    origin_run: str,
    statuses: dict[str, list[str]],
    step: Optional[str] = None,
) -> ResumePlan:
    """What to clone, or a ResumeError saying why the origin cannot be resumed as asked.

    `statuses`: the origin's task statuses by step (steps it never reached are absent).
    """
    if step is not None and step not in current:
        raise ResumeError(
            f"the flow has no step {step!r} (steps: {', '.join(s.name for s in current.sorted_steps())})"
        )
    rerun = downstream(current, step) if step is not None else set()
    candidates = set(current.steps) - rerun
    differ = graph_differences(origin, current)
    # A changed step is harmless where it runs anew; where it would be cloned, the
    # clone's inputs and outputs would not be what the current graph wires.
    blocking = {n: why for n, why in differ.items() if n in candidates and "succeeded" in statuses.get(n, [])}
    if blocking:
        listed = "; ".join(f"{n} ({why})" for n, why in blocking.items())
        first = next(s.name for s in current.sorted_steps() if s.name in blocking or s.name in differ)
        raise ResumeError(
            f"the graph changed since run {origin_run}, so its steps cannot be cloned: {listed}. "
            f"Resume from a step no earlier than the first change (`resume {first}`) or run the flow anew"
        )
    if step is not None:
        unfinished = [n for n in _in_order(current, upstream(current, step)) if not _all_succeeded(statuses.get(n))]
        if unfinished:
            before = unfinished[0]
            state = "never ran" if not statuses.get(before) else "did not succeed"
            raise ResumeError(
                f"step {step!r} comes after the failure in run {origin_run}: step {before!r} {state} there, "
                f"so the steps before {step!r} cannot all be cloned. Resume from {before!r} or an earlier step"
            )
    return ResumePlan(cloneable=frozenset(candidates), rerun=frozenset(rerun))


def _all_succeeded(statuses: Optional[list[str]]) -> bool:
    return bool(statuses) and all(s == "succeeded" for s in statuses)  # type: ignore[union-attr]


def _in_order(graph: GraphSpec, names: set[str]) -> list[str]:
    return [s.name for s in graph.sorted_steps() if s.name in names]
