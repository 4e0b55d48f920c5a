"""merge_artifacts and the foreach stack, as under Metaflow.

The flows repeat the cases of Metaflow's core tests (merge_artifacts,
merge_artifacts_include, merge_artifacts_propagation, nested_foreach) and report
what each step saw; Metaflow and flowplane, running the same source, must agree.
"""

from __future__ import annotations

import pytest

from tests.support.metaflow_twins import run_both

pytestmark = pytest.mark.slow

# Each framework's name for "not a join" / "include and exclude together": Metaflow
# raises its base MetaflowException, flowplane its FlowSpecError. The merge errors share names.
BASE_ERROR = {"metaflow": "MetaflowException", "flowplane": "FlowSpecError"}

MERGE = """
import json
from FRAMEWORK import FlowSpec, current, step

def outcome(call):
    try:
        call()
        return "ok"
    except Exception as e:
        return type(e).__name__

def report(*what):
    print("PARITY", json.dumps([current.step_name, *what]))

class MergeFlow(FlowSpec):
    @step
    def start(self):
        self.non_modified_passdown = "a"
        self.modified_to_same_value = "b"
        self.manual_merge_required = "c"
        self.ignore_me = "d"
        self.next(self.left, self.right)

    @step
    def left(self):
        self.manual_merge_required = "left"
        self.ignore_me = "left"
        self.modified_to_same_value = "e"
        self.only_left = 1
        self.next(self.join)

    @step
    def right(self):
        self.manual_merge_required = "right"
        self.ignore_me = "right"
        self.modified_to_same_value = "e"
        self.next(self.join)

    @step
    def join(self, inputs):
        report("conflict", outcome(lambda: self.merge_artifacts(inputs)),
               hasattr(self, "non_modified_passdown"), hasattr(self, "manual_merge_required"))
        report("both", outcome(lambda: self.merge_artifacts(inputs, exclude=["ignore_me"],
                                                            include=["non_modified_passdown"])))
        report("exclude_only", outcome(lambda: self.merge_artifacts(inputs, exclude=["ignore_me"])))
        self.manual_merge_required = "join"
        report("missing", outcome(lambda: self.merge_artifacts(inputs, include=["manual_merge_required", "foobar"])),
               hasattr(self, "non_modified_passdown"))
        report("include", outcome(lambda: self.merge_artifacts(inputs, include=["non_modified_passdown"])),
               self.non_modified_passdown, hasattr(self, "ignore_me"), hasattr(self, "modified_to_same_value"))
        report("exclude", outcome(lambda: self.merge_artifacts(inputs, exclude=["ignore_me"])),
               self.modified_to_same_value, self.manual_merge_required, self.only_left, hasattr(self, "ignore_me"))
        self.next(self.end)

    @step
    def end(self):
        report("not_a_join", outcome(lambda: self.merge_artifacts([])), self.non_modified_passdown,
               self.modified_to_same_value, self.manual_merge_required, self.only_left)

if __name__ == "__main__":
    MergeFlow()
"""


def test_merge_artifacts_conflicts_include_exclude_and_non_joins_as_metaflow(tmp_path):
    runs = run_both(tmp_path, "merge_flow", MERGE, "run")
    for fw, r in runs.items():
        assert r.code == 0, r.out + r.err
        base = BASE_ERROR[fw]
        assert r.reported == sorted([
            ["end", "not_a_join", base, "a", "e", "join", 1],
            ["join", "both", base],
            ["join", "conflict", "UnhandledInMergeArtifactsException", False, False],
            ["join", "exclude", "ok", "e", "join", 1, False],
            ["join", "exclude_only", "UnhandledInMergeArtifactsException"],
            ["join", "include", "ok", "a", False, False],
            ["join", "missing", "MissingInMergeArtifactsException", False],
        ], key=lambda v: __import__("json").dumps(v)), fw


def test_flowplane_merge_errors_are_merge_artifacts_errors():
    from flowplane.flowspec import (
        MergeArtifactsError,
        MissingInMergeArtifactsException,
        UnhandledInMergeArtifactsException,
    )

    assert issubclass(UnhandledInMergeArtifactsException, MergeArtifactsError)
    assert issubclass(MissingInMergeArtifactsException, MergeArtifactsError)


NESTED = """
import json
from FRAMEWORK import FlowSpec, current, step

def report(flow, *what):
    print("PARITY", json.dumps([current.step_name, flow.index, flow.input, flow.foreach_stack(), *what]))

class NestedFlow(FlowSpec):
    @step
    def start(self):
        self.non_modified_passdown = "a"
        self.x = ["a", "b"]
        report(self)
        self.next(self.outer, foreach="x")

    @step
    def outer(self):
        self.y = ["c", "d", "e"]
        report(self)
        self.next(self.inner, foreach="y")

    @step
    def inner(self):
        setattr(self, "var%d" % self.index, self.index)
        report(self, self.x[self.foreach_stack()[0][0]] == self.foreach_stack()[0][2])
        self.next(self.after_inner)

    @step
    def after_inner(self):
        report(self)
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        before = self.foreach_stack()
        self.merge_artifacts(inputs)
        report(self, before, [getattr(self, "var%d" % i) for i in range(len(self.y))])
        self.next(self.outer_end)

    @step
    def outer_end(self):
        report(self, self.non_modified_passdown)
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.merge_artifacts(inputs, exclude=["y"])
        report(self, self.var2, self.non_modified_passdown)
        self.next(self.end)

    @step
    def end(self):
        report(self, self.non_modified_passdown, self.var0)

if __name__ == "__main__":
    NestedFlow()
"""


def test_foreach_stack_input_and_merge_propagation_at_every_depth_as_metaflow(tmp_path):
    runs = run_both(tmp_path, "nested_flow", NESTED, "run")
    for r in runs.values():
        assert r.code == 0, r.out + r.err
    got = runs["flowplane"].reported
    assert got == runs["metaflow"].reported
    # And what that is, so a change in both is seen: the outer value read through self
    # where the list is inherited, None in the inner join until merge_artifacts brings it.
    assert ["inner", 2, "e", [[1, 2, "b"], [2, 3, "e"]], True] in got
    assert ["after_inner", 0, "c", [[0, 2, "a"], [0, 3, "c"]]] in got
    assert ["inner_join", 1, None, [[1, 2, None]], [[1, 2, None]], [0, 1, 2]] in got
    assert ["outer_end", 0, "a", [[0, 2, "a"]], "a"] in got
    assert ["outer_join", None, None, [], 2, "a"] in got and ["end", None, None, [], "a", 0] in got
    assert ["start", None, None, []] in got
