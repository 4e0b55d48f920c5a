"""Saving what a step leaves on `self` as the task's artifacts.

Artifacts a task inherits and never touches keep their parent's content
address: nothing is loaded or pickled again. One that was read but cannot
have changed (an immutable value, still the very object loaded) is reused
the same way; anything else is pickled, and the content address stores it
only once if it did not change after all.
"""

from __future__ import annotations

from typing import Any, Optional

from ..datastore.artifacts import ArtifactRef, ArtifactStore, TaskArtifacts


class ArtifactPersistError(Exception):
    """An artifact cannot be stored (usually: it cannot be pickled)."""

    # An attempt record names its error type by module: the name this class was first
    # defined under stays (flowplane/task_persist.py), as the task errors' do (errors.py).
    __module__ = "flowplane.task_persist"


_IMMUTABLE_SCALARS = (int, float, complex, str, bytes, bool, type(None), range)


def _immutable(value: Any, depth: int = 0) -> bool:
    if isinstance(value, _IMMUTABLE_SCALARS):
        return True
    if depth < 4 and isinstance(value, (tuple, frozenset)):
        return all(_immutable(v, depth + 1) for v in value)
    return False


class LoadTracker:
    """Remembers the objects loaded from parents, to recognise them when saving."""

    def __init__(self) -> None:
        # id(value) -> (value, ref); holding the value keeps its id from being reused.
        self._loaded: dict[int, tuple[Any, ArtifactRef]] = {}

    def wrap(self, source: TaskArtifacts) -> "TrackedArtifacts":
        return TrackedArtifacts(source, self)

    def note(self, value: Any, ref: ArtifactRef) -> None:
        self._loaded[id(value)] = (value, ref)

    def unchanged_ref(self, value: Any) -> Optional[ArtifactRef]:
        found = self._loaded.get(id(value))
        if found is not None and found[0] is value and _immutable(value):
            return found[1]
        return None


class TrackedArtifacts:
    """An ArtifactSource (flowspec's protocol) that reports what it loads to a tracker."""

    def __init__(self, source: TaskArtifacts, tracker: LoadTracker):
        self.source = source
        self.tracker = tracker

    def names(self) -> list[str]:
        return self.source.names()

    def digest(self, name: str) -> str:
        return self.source.digest(name)

    def ref(self, name: str) -> ArtifactRef:
        return self.source.index[name]

    def load(self, name: str) -> Any:
        value = self.source.load(name)
        self.tracker.note(value, self.source.index[name])
        return value


def persist(
    flow: Any,
    store: ArtifactStore,
    tracker: LoadTracker,
    parameters: dict[str, Any],
    best_effort: bool = False,
) -> dict[str, ArtifactRef]:
    """The artifact index of this task: every public attribute, inherited ones, and parameters.

    With best_effort (a failed attempt), artifacts that cannot be stored are
    skipped instead of failing: the step's own error is what matters then.
    """
    index: dict[str, ArtifactRef] = {}
    inherited = flow.__dict__.get("_flowplane_inherited")
    own = {k: v for k, v in flow.__dict__.items() if not k.startswith("_")}
    if inherited is not None:
        for name in inherited.names():
            if name not in own:
                index[name] = inherited.ref(name)
    for name, value in {**own, **parameters}.items():
        ref = tracker.unchanged_ref(value)
        if ref is None:
            try:
                ref = store.save(value)
            except Exception as e:
                if best_effort:
                    continue
                raise ArtifactPersistError(
                    f"the artifact {name!r} ({type(value).__name__}) cannot be stored: {type(e).__name__}: {e}"
                ) from e
        index[name] = ref
    return index
