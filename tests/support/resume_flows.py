"""The flow the `resume` tests break, fix and resume (no tests here).

`resume_flow(marks)` is ResumeFlow's source: start fans out over three items to
`body`, then `join` and `end`. Every task that runs appends `<step>/<task id>`
to the file `marks`, so a test sees which tasks ran as processes (a clone runs
none). `--fail_in body` fails item 1 and `--fail_in end` the end step, while the
module's `BROKEN = True` stands; `fixed(source)` is the same flow with the bug fixed.
"""

from __future__ import annotations

from pathlib import Path

_SOURCE = '''
from flowplane import FlowSpec, Parameter, current, step

BROKEN = True
MARKS = {marks!r}


def mark():
    with open(MARKS, "a") as f:
        f.write("%s/%s\\n" % (current.step_name, current.task_id))


class ResumeFlow(FlowSpec):
    fail_in = Parameter("fail_in", default="nowhere")

    @step
    def start(self):
        mark()
        self.items = [10, 20, 30]
        self.next(self.body, foreach="items")

    @step
    def body(self):
        mark()
        print("body of %d" % self.input)
        self.square = self.input * self.input
        if BROKEN and self.fail_in == "body" and self.index == 1:
            raise ValueError("item %d is broken" % self.input)
        self.next(self.join)

    @step
    def join(self, inputs):
        mark()
        self.total = sum(i.square for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        mark()
        self.origin = current.origin_run_id
        self.partial = "kept"
        if BROKEN and self.fail_in == "end":
            raise RuntimeError("end is broken")
        self.done = True


if __name__ == "__main__":
    ResumeFlow()
'''

TOTAL = 10 * 10 + 20 * 20 + 30 * 30


def resume_flow(marks: Path) -> str:
    return _SOURCE.format(marks=str(marks))


def fixed(source: str) -> str:
    assert "BROKEN = True" in source
    return source.replace("BROKEN = True", "BROKEN = False")


def rewired(source: str) -> str:
    """The flow with a new step `extra` between join and end: a changed graph."""
    return source.replace(
        "        self.total = sum(i.square for i in inputs)\n        self.next(self.end)\n",
        "        self.total = sum(i.square for i in inputs)\n        self.next(self.extra)\n\n"
        "    @step\n    def extra(self):\n        self.next(self.end)\n",
    )


def marks_of(marks: Path) -> list[str]:
    """The tasks that ran since the file was last cleared, sorted."""
    return sorted(marks.read_text().split()) if marks.exists() else []
