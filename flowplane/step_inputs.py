"""What the task runtime gives a step: a join's `inputs`, read lazily, and its foreach frames.

A leaf: flowplane/task builds these without importing flowspec.py, since a FlowSpec
starts its flow's command line (cli.py), which runs tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional, Protocol


class ArtifactSource(Protocol):
    """Read-only artifacts of one task, as the runtime provides them."""

    def names(self) -> list[str]: ...

    def digest(self, name: str) -> str: ...

    def load(self, name: str) -> Any: ...


@dataclass(frozen=True)
class ForeachFrame:
    step: str  # the foreach step that split
    index: int
    num_splits: int
    var: Optional[str] = None  # the artifact it split over (foreach=...)


class Input:
    """One parent task in a join: its artifacts, read lazily."""

    def __init__(self, step: str, source: ArtifactSource, index: Optional[int] = None):
        self._step = step
        self._source = source
        self._index = index
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._cache:
            if name not in self._source.names():
                raise AttributeError(f"the input from step {self._step!r} has no artifact {name!r}")
            self._cache[name] = self._source.load(name)
        return self._cache[name]

    @property
    def index(self) -> Optional[int]:
        return self._index

    def __repr__(self) -> str:
        return f"<input from {self._step}>"


class Inputs:
    """The `inputs` of a join: iterate, index, or `inputs.<step>` after a static split."""

    def __init__(self, inputs: list[Input]):
        self._inputs = inputs
        self._by_step = {i._step: i for i in inputs}

    def __iter__(self) -> Iterator[Input]:
        return iter(self._inputs)

    def __len__(self) -> int:
        return len(self._inputs)

    def __getitem__(self, i: int) -> Input:
        return self._inputs[i]

    def __getattr__(self, name: str) -> Input:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._by_step[name]
        except KeyError:
            raise AttributeError(f"no input from step {name!r}; inputs come from {sorted(self._by_step)}") from None
