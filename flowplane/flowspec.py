"""`FlowSpec`: the base class users write flows with.

Inside a task the runtime (`flowplane.task`) gives the instance three things:
its parameter values, a view of the artifacts it inherits (loaded lazily, on
first access) and its foreach stack (step_inputs.py). Everything a step assigns to `self` that
does not start with `_` becomes an artifact when the step returns.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

from .step_inputs import Input, Inputs


class FlowSpecError(Exception):
    """Misuse of the FlowSpec API inside a step (wrong `next`, bad foreach, ...)."""


class MergeArtifactsError(FlowSpecError):
    """`merge_artifacts` met values it cannot merge; names the artifacts."""

    def __init__(self, message: str, artifacts: list[str]):
        super().__init__(message)
        self.artifacts = artifacts


class UnhandledInMergeArtifactsException(MergeArtifactsError):
    """Branches disagree on artifacts the join did not set, include or exclude (Metaflow's name)."""


class MissingInMergeArtifactsException(MergeArtifactsError):
    """`include` names artifacts no branch has (Metaflow's name)."""


# Attributes that are FlowSpec machinery, never artifacts.
_INTERNAL = ("_",)


class FlowSpec:
    """Subclass it, decorate methods with `@step`, end each with `self.next(...)`."""

    _flowplane_schedule = None

    def __init__(self, use_cli: bool = True) -> None:
        object.__setattr__(self, "_flowplane_params", {})
        object.__setattr__(self, "_flowplane_inherited", None)
        object.__setattr__(self, "_flowplane_foreach_stack", [])
        object.__setattr__(self, "_flowplane_cached_input", {})
        object.__setattr__(self, "_transition", None)
        if use_cli:
            from .cli import run_flow_cli

            run_flow_cli(type(self), sys.argv)

    # --- artifacts -------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: an inherited artifact, loaded once.
        if name.startswith("_"):
            raise AttributeError(name)
        source = self.__dict__.get("_flowplane_inherited")
        if source is not None and name in source.names():
            value = source.load(name)
            self.__dict__[name] = value
            return value
        raise AttributeError(
            f"{type(self).__name__!s} has no artifact or attribute {name!r} "
            "(in a join step, artifacts of the branches are read from `inputs`)"
        )

    def _artifact_names(self) -> list[str]:
        """Names this task will persist: assigned now or inherited."""
        names = [k for k in self.__dict__ if not k.startswith(_INTERNAL)]
        source = self.__dict__.get("_flowplane_inherited")
        if source is not None:
            names += [n for n in source.names() if n not in self.__dict__]
        return names

    # --- foreach -----------------------------------------------------------

    @property
    def input(self) -> Any:
        """The item of the innermost foreach this task handles; None outside a foreach (as Metaflow)."""
        return self._find_input()

    @property
    def index(self) -> Optional[int]:
        """The index of this task's item in the innermost foreach."""
        stack = self.__dict__.get("_flowplane_foreach_stack") or []
        return stack[-1].index if stack else None

    def foreach_stack(self) -> list[tuple[int, int, Any]]:
        """(index, num_splits, value) for each enclosing foreach, outermost first."""
        stack = self.__dict__.get("_flowplane_foreach_stack") or []
        return [(frame.index, frame.num_splits, self._find_input(i)) for i, frame in enumerate(stack)]

    def _find_input(self, depth: Optional[int] = None) -> Any:
        """A foreach level's item, read through `self` as Metaflow does, then kept.

        Through `self` because that is what Metaflow's users see: in a join after an inner
        foreach the outer list is not inherited, so the outer value is None unless
        merge_artifacts brought the list in first; a step that reassigns the list sees
        its own. The first answer is kept for the rest of the step, also as Metaflow.
        """
        stack = self.__dict__.get("_flowplane_foreach_stack") or []
        if not stack:
            return None
        depth = len(stack) - 1 if depth is None else depth
        cache = self.__dict__.setdefault("_flowplane_cached_input", {})
        if depth not in cache:
            frame = stack[depth]
            try:
                items = getattr(self, frame.var) if frame.var else None
            except AttributeError:
                cache[depth] = None
            else:
                cache[depth] = None if items is None else _item(items, frame.index)
        return cache[depth]

    # --- transitions ---------------------------------------------------------

    def next(self, *steps: Any, foreach: Optional[str] = None) -> None:
        """Name the step(s) that run after this one; `foreach=` fans out over an artifact."""
        if self.__dict__.get("_transition") is not None:
            raise FlowSpecError("self.next() was called twice in one step")
        names = []
        for s in steps:
            name = getattr(s, "__name__", None)
            if name is None or not getattr(s, "is_step", False):
                raise FlowSpecError(f"self.next() takes steps (self.<step>), got {s!r}")
            names.append(name)
        if not names:
            raise FlowSpecError("self.next() needs at least one step")
        num_splits = None
        if foreach is not None:
            if len(names) != 1:
                raise FlowSpecError("a foreach transition names exactly one step")
            try:
                items = getattr(self, foreach)
            except AttributeError:
                raise FlowSpecError(f"foreach={foreach!r}: this step has no artifact {foreach!r}") from None
            try:
                num_splits = len(items)
            except TypeError:
                raise FlowSpecError(
                    f"foreach={foreach!r}: the artifact must be a list or other sized iterable, "
                    f"got {type(items).__name__}"
                ) from None
            if num_splits == 0:
                raise FlowSpecError(f"foreach={foreach!r}: the list is empty; a foreach needs at least one item")
        object.__setattr__(self, "_transition", (names, foreach, num_splits))

    # --- joins -------------------------------------------------------------

    def merge_artifacts(
        self,
        inputs: "Inputs",
        exclude: Optional[list[str]] = None,
        include: Optional[list[str]] = None,
    ) -> None:
        """Copy the branches' artifacts this join has not set; refuse conflicting ones.

        Metaflow's rules: an artifact the step already has (set here, a parameter, any
        attribute) is left alone; `exclude` names are skipped; with `include` only those
        names are merged, and each must come from a branch unless the step has it. Values
        are compared by content digest. Conflicts are reported before missing names, and
        nothing is set when either is found.
        """
        include = list(include or [])
        exclude = list(exclude or [])
        if not isinstance(inputs, Inputs):
            raise FlowSpecError(
                "merge_artifacts can only be called in a join and step *%s* is not a join" % _current_step()
            )
        if include and exclude:
            raise FlowSpecError("`exclude` and `include` are mutually exclusive in merge_artifacts")
        to_merge: dict[str, tuple[Input, str]] = {}
        unresolved: list[str] = []
        for inp in inputs:
            for name in inp._source.names():
                # Internal artifacts (`_graph_info`) are the runtime's, as Metaflow's INTERNAL_ARTIFACTS.
                wanted = name in include if include else name not in exclude and not name.startswith(_INTERNAL)
                if not wanted or hasattr(self, name):
                    continue
                digest = inp._source.digest(name)
                _, first = to_merge.setdefault(name, (inp, digest))
                if first != digest:
                    unresolved.append(name)
        missing = [n for n in include if n not in to_merge and not hasattr(self, n)]
        step = _current_step()
        if unresolved:
            raise UnhandledInMergeArtifactsException(
                "Step *%s* cannot merge the following artifacts due to them having conflicting "
                "values:\n[%s].\nTo remedy this issue, be sure to explicitly set those artifacts "
                "(using self.<artifact_name> = ...) prior to calling merge_artifacts." % (step, ", ".join(unresolved)),
                unresolved,
            )
        if missing:
            raise MissingInMergeArtifactsException(
                "Step *%s* specifies that [%s] should be merged but [%s] are not present.\nTo remedy this "
                "issue, make sure that the values specified in only come from at least one branch"
                % (step, ", ".join(include), ", ".join(missing)),
                missing,
            )
        for name, (inp, _) in to_merge.items():
            self.__dict__[name] = inp._source.load(name)


def _item(items: Any, index: int) -> Any:
    try:
        return items[index]
    except TypeError:
        # Not indexable (a generator was consumed by len(); sets, dict views): iterate.
        from itertools import islice

        return next(islice(iter(items), index, index + 1))


def _current_step() -> str:
    from .current import current

    return current.step_name or "?"
