"""Small flows the tests read, lint, compile and walk, as source text.

One text per graph shape, shared by the graph reader, lint, task-graph and
compiler tests, so a shape is written once and every test of it agrees on its
step names. The shapes are step methods written unindented; `flow_class` puts
them in a class (with parameters or class decorators) and `flow_source` adds
the imports. Flows that exist to show one fault stay beside the test that
shows it. `sleepy_flow` is a whole runnable module, for the tests that stop or
kill a run while its start step sleeps.
"""

from __future__ import annotations

import textwrap

# Three lines, so a class written right after it starts on line 4 (tests quote line numbers).
HEADER = (
    "import flowplane\n"
    "from flowplane import FlowSpec, JSONType, Parameter, catch, resources, retry, schedule, step, timeout\n\n"
)


def flow_class(steps: str, name: str = "F", head: str = "", decorators: str = "") -> str:
    """`class <name>(FlowSpec):` holding `head` (e.g. parameters) then `steps`;
    `decorators` go above the class. All three are written unindented."""

    def block(text: str) -> str:
        return textwrap.indent(textwrap.dedent(text).lstrip("\n"), "    ")

    return textwrap.dedent(decorators).lstrip("\n") + f"class {name}(FlowSpec):\n" + block(head) + block(steps)


def decorate(steps: str, step: str, decorators: str) -> str:
    """`steps` with `decorators` (lines, unindented) written above `@step` of `step`."""
    marker = f"@step\ndef {step}("
    assert steps.count(marker) == 1, f"no single step {step!r} to decorate"
    return steps.replace(marker, decorators.rstrip("\n") + "\n" + marker)


def flow_source(text: str) -> str:
    """A whole module: the imports, then `text` (a class, or helpers and a class)."""
    return HEADER + textwrap.dedent(text).lstrip("\n")


def line_of(source: str, text: str) -> int:
    """The number of the one line of `source` that contains `text`."""
    hits = [i for i, line in enumerate(source.splitlines(), 1) if text in line]
    assert len(hits) == 1, f"{text!r} is on lines {hits}"
    return hits[0]


# --- linear -------------------------------------------------------------------------------

START_END = """
@step
def start(self):
    self.next(self.end)

@step
def end(self):
    pass
"""

LINEAR = """
@step
def start(self):
    self.next(self.a)

@step
def a(self):
    self.next(self.end)

@step
def end(self):
    pass
"""

# --- static splits ------------------------------------------------------------------------

BRANCH = """
@step
def start(self):
    self.next(self.a, self.b)

@step
def a(self):
    self.next(self.join)

@step
def b(self):
    self.next(self.join)

@step
def join(self, inputs):
    self.next(self.end)

@step
def end(self):
    pass
"""

# BRANCH with a second step on branch a: a branch is a sequence, not one step.
BRANCH_OF_TWO_STEPS = BRANCH.replace(
    "def a(self):\n    self.next(self.join)",
    "def a(self):\n    self.next(self.a2)\n\n@step\ndef a2(self):\n    self.next(self.join)",
)

SPLIT3 = """
@step
def start(self):
    self.next(self.x, self.y, self.z)

@step
def x(self):
    self.next(self.join)

@step
def y(self):
    self.next(self.join)

@step
def z(self):
    self.next(self.join)

@step
def join(self, inputs):
    self.next(self.end)

@step
def end(self):
    pass
"""

SPLIT_IN_SPLIT = """
@step
def start(self):
    self.next(self.a, self.b)

@step
def a(self):
    self.next(self.a1, self.a2)

@step
def a1(self):
    self.next(self.a_join)

@step
def a2(self):
    self.next(self.a_join)

@step
def a_join(self, inputs):
    self.next(self.join)

@step
def b(self):
    self.next(self.join)

@step
def join(self, inputs):
    self.next(self.end)

@step
def end(self):
    pass
"""

# --- foreaches ----------------------------------------------------------------------------

# Two steps inside the foreach: body2's parent is a foreach child, not the split.
FOREACH = """
@step
def start(self):
    self.items = list(range(4))
    self.next(self.body, foreach="items")

@step
def body(self):
    self.next(self.body2)

@step
def body2(self):
    self.next(self.join)

@step
def join(self, inputs):
    self.next(self.end)

@step
def end(self):
    pass
"""

NESTED_FOREACH = """
@step
def start(self):
    self.outer = [1, 2, 3]
    self.next(self.middle, foreach="outer")

@step
def middle(self):
    self.inner = [1, 2]
    self.next(self.leaf, foreach="inner")

@step
def leaf(self):
    self.next(self.inner_join)

@step
def inner_join(self, inputs):
    self.next(self.outer_join)

@step
def outer_join(self, inputs):
    self.next(self.end)

@step
def end(self):
    pass
"""

FOREACH_IN_BRANCH = """
@step
def start(self):
    self.next(self.fan, self.plain)

@step
def fan(self):
    self.items = "abcde"
    self.next(self.each, foreach="items")

@step
def each(self):
    self.next(self.fan_join)

@step
def fan_join(self, inputs):
    self.next(self.join)

@step
def plain(self):
    self.next(self.join)

@step
def join(self, inputs):
    self.next(self.end)

@step
def end(self):
    pass
"""

SPLIT_IN_FOREACH = """
@step
def start(self):
    self.items = [1, 2]
    self.next(self.each, foreach="items")

@step
def each(self):
    self.next(self.left, self.right)

@step
def left(self):
    self.next(self.each_join)

@step
def right(self):
    self.next(self.each_join)

@step
def each_join(self, inputs):
    self.next(self.join)

@step
def join(self, inputs):
    self.next(self.end)

@step
def end(self):
    pass
"""

# A foreach holding a split whose one branch holds a foreach; join_rows has a docstring.
FOREACH_SPLIT_FOREACH = """
@step
def start(self):
    self.next(self.row, foreach='rows')

@step
def row(self):
    self.next(self.left, self.right)

@step
def left(self):
    self.next(self.cell, foreach='cols')

@step
def cell(self):
    self.next(self.join_cols)

@step
def join_cols(self, inputs):
    self.next(self.meet)

@step
def right(self):
    self.next(self.meet)

@step
def meet(self, inputs):
    self.next(self.join_rows)

@step
def join_rows(self, inputs):
    '''All rows together.'''
    self.next(self.end)

@step
def end(self):
    pass
"""

# Every valid shape above, by a name for test ids.
VALID_SHAPES = {
    "start-end": START_END,
    "linear": LINEAR,
    "branch": BRANCH,
    "branch-of-two-steps": BRANCH_OF_TWO_STEPS,
    "three-way-split": SPLIT3,
    "split-inside-a-split": SPLIT_IN_SPLIT,
    "foreach": FOREACH,
    "nested-foreach": NESTED_FOREACH,
    "foreach-inside-a-branch": FOREACH_IN_BRANCH,
    "branch-inside-a-foreach": SPLIT_IN_FOREACH,
    "foreach-split-foreach": FOREACH_SPLIT_FOREACH,
}


# --- whole runnable modules ---------------------------------------------------------------

def sleepy_flow(seconds: int, first: str = "") -> str:
    """A runnable module (with its `__main__` block) of SleepyFlow, whose start step runs
    `first` (lines, unindented; `os` and `time` are imported), sleeps `seconds`, then
    goes on to end."""
    before = textwrap.indent(textwrap.dedent(first).strip("\n") + "\n", " " * 8) if first.strip() else ""
    return f'''
import os
import time

from flowplane import FlowSpec, step


class SleepyFlow(FlowSpec):
    @step
    def start(self):
{before}        time.sleep({seconds})
        self.next(self.end)

    @step
    def end(self):
        """Not reached: the tests stop the run while start sleeps."""


if __name__ == "__main__":
    SleepyFlow()
'''


def foreach_flow(name: str, items: int, body: str, imports: str = "") -> str:
    """A runnable module of flow `name`: `start` fans out over `range(items)` to `work`, whose
    body is `body` (lines, unindented, before its `self.next`), then a join and `end`."""
    work = textwrap.indent(textwrap.dedent(body).strip("\n") + "\n", " " * 8)
    head = textwrap.dedent(imports).strip("\n")
    return f'''{head + chr(10) if head else ""}from flowplane import FlowSpec, step


class {name}(FlowSpec):
    @step
    def start(self):
        self.items = list(range({items}))
        self.next(self.work, foreach="items")

    @step
    def work(self):
{work}        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    {name}()
'''
