"""What `resume` may clone (flowplane/resume/plan.py): Metaflow's rule, and each refusal's message."""

from __future__ import annotations

import pytest

from flowplane.graph import graph_from_source
from flowplane.resume import ResumeError, graph_differences, plan_resume
from tests.support.flow_sources import BRANCH, flow_class, flow_source

BRANCHY = flow_source(flow_class(BRANCH, "Branchy"))

# `b` now goes through a new step `c` before the join.
BRANCHY_WITH_C = flow_source(flow_class(BRANCH.replace(
    "def b(self):\n    self.next(self.join)",
    "def b(self):\n    self.next(self.c)\n\n@step\ndef c(self):\n    self.next(self.join)",
), "Branchy"))
assert BRANCHY_WITH_C != BRANCHY

FAILED_IN_B = {"start": ["succeeded"], "a": ["succeeded"], "b": ["failed"]}


def graph(source: str = BRANCHY):
    return graph_from_source(source)


def test_without_a_step_every_step_may_clone_and_none_is_forced_to_rerun():
    plan = plan_resume(graph(), graph(), "7", FAILED_IN_B)
    assert plan.cloneable == {"start", "a", "b", "join", "end"}
    assert plan.rerun == set()


def test_a_step_reruns_with_everything_downstream_of_it():
    plan = plan_resume(graph(), graph(), "7", {**FAILED_IN_B, "b": ["succeeded"], "join": ["failed"]}, "a")
    assert plan.rerun == {"a", "join", "end"}
    assert plan.cloneable == {"start", "b"}


def test_an_unknown_step_is_refused_listing_the_steps():
    with pytest.raises(ResumeError, match=r"the flow has no step 'nope' \(steps: start, a, b, join, end\)"):
        plan_resume(graph(), graph(), "7", FAILED_IN_B, "nope")


def test_a_step_after_the_failure_is_refused_naming_the_failed_step():
    with pytest.raises(ResumeError) as e:
        plan_resume(graph(), graph(), "7", FAILED_IN_B, "end")
    assert str(e.value) == (
        "step 'end' comes after the failure in run 7: step 'b' did not succeed there, so the steps before "
        "'end' cannot all be cloned. Resume from 'b' or an earlier step"
    )


def test_a_step_after_steps_the_run_never_reached_says_so():
    with pytest.raises(ResumeError, match="step 'join' never ran there"):
        plan_resume(graph(), graph(), "7", {"start": ["succeeded"], "a": ["succeeded"], "b": ["succeeded"]}, "end")


def test_a_changed_graph_is_refused_naming_every_step_that_differs_and_would_be_cloned():
    statuses = {"start": ["succeeded"], "a": ["succeeded"], "b": ["succeeded"], "join": ["failed"]}
    with pytest.raises(ResumeError) as e:
        plan_resume(graph(BRANCHY_WITH_C), graph(), "7", statuses)
    message = str(e.value)
    assert message.startswith("the graph changed since run 7, so its steps cannot be cloned: b (out_funcs: ['join'] -> ['c'])")
    assert "resume b" in message


def test_a_graph_changed_only_where_the_run_goes_anew_resumes():
    statuses = {"start": ["succeeded"], "a": ["succeeded"], "b": ["succeeded"], "join": ["failed"]}
    plan = plan_resume(graph(BRANCHY_WITH_C), graph(), "7", statuses, "b")
    assert plan.rerun == {"b", "c", "join", "end"}


def test_graph_differences_name_new_missing_and_rewired_steps():
    differ = graph_differences(graph(), graph(BRANCHY_WITH_C))
    assert differ["c"] == "new in the current code"
    assert differ["b"] == "out_funcs: ['join'] -> ['c']"
    assert differ["join"] == "in_funcs: ['a', 'b'] -> ['a', 'c']"
    assert set(differ) == {"b", "c", "join"}
    assert graph_differences(graph(BRANCHY_WITH_C), graph())["c"] == "not in the current code"
