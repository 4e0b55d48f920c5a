"""A wide foreach's tasks written by the real task runtime, for join tests and the bench (no tests here).

`run_fan_out` runs `start` (a foreach over `width` items) and every `body` task
through `flowplane task` in-process, into a datastore root: the records, artifact
indices, blobs and logs a join reads are the runtime's own, not shapes written by hand.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from flowplane.datastore import layout
from flowplane.task.graph import TaskRef
from tests.support.tasks import task

FLOW = "WideFlow"
RUN_ID = "100"
SOURCE = '''
from flowplane import FlowSpec, Parameter, step


class WideFlow(FlowSpec):
    width = Parameter("width", default=3)

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.body, foreach="items")

    @step
    def body(self):
        self.square = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.squares = [i.square for i in inputs]
        self.indices = [i.index for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    WideFlow()
'''


def write_flow(folder: Path) -> Path:
    path = folder / "wide_flow.py"
    path.write_text(SOURCE)
    return path


def run_fan_out(flow: Path, root: Path, width: int, run_id: str = RUN_ID) -> None:
    """`start` and its `width` body tasks, each one attempt of the real task runtime (it must succeed)."""
    params = json.dumps({"width": width})
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert task(flow, root, "start", "1", 0, params, run_id) == 0
        for i in range(width):
            assert task(flow, root, "body", layout.task_id_for([i]), 0, params, run_id) == 0, f"body 1.{i}"


def join(flow: Path, root: Path, width: int, run_id: str = RUN_ID) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return task(flow, root, "join", "1", 0, json.dumps({"width": width}), run_id)


def body_refs(width: int) -> list[TaskRef]:
    """The join's parents in index order."""
    return [TaskRef("body", layout.task_id_for([i])) for i in range(width)]
