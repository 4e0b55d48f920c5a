"""The graph lint: one broken flow per rule, with the message it must give,
and flows of every valid shape that must lint clean."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowplane.graph import read_source_flow
from flowplane.lint import RULES, LintError, LintFailed, check, lint

from tests.support.flow_sources import BRANCH as BRANCH_STEPS
from tests.support.flow_sources import LINEAR as LINEAR_STEPS
from tests.support.flow_sources import START_END, VALID_SHAPES, decorate, flow_class, flow_source, line_of
from tests.support.shared_flows import SHARED_FLOWS  # noqa: E402

LINEAR = flow_class(LINEAR_STEPS)
BRANCH = flow_class(BRANCH_STEPS)


def lint_source(source: str) -> list[LintError]:
    return lint(read_source_flow(source, "flow.py"))


def errors_of(source: str, rule: str) -> list[LintError]:
    return [e for e in lint_source(source) if e.rule == rule]


@dataclass
class Case:
    """A broken flow and the error it must give."""

    id: str
    rule: str
    body: str
    # The line holding this text is the line the error must point at.
    at: str
    step: Optional[str] = None
    parameter: Optional[str] = None
    words: tuple[str, ...] = ()


CASES = [
    # --- problems found by the reader ---
    Case(
        "decorator-argument-not-constant",
        "source",
        flow_class(decorate(LINEAR_STEPS, "a", "@retry(times=TIMES)")),
        at="@retry(times=TIMES)",
        step="a",
        words=("@retry", "'times'", "must be a constant"),
    ),
    Case(
        "decorator-argument-invalid",
        "source",
        flow_class(decorate(LINEAR_STEPS, "a", "@retry(times=-1)")),
        at="@retry(times=-1)",
        step="a",
        words=("@retry", "times", "greater than or equal to 0"),
    ),
    Case(
        "parameter-type-unknown",
        "source",
        flow_class(LINEAR_STEPS, head="alpha = Parameter('alpha', type=list)\n"),
        at="Parameter('alpha'",
        parameter="alpha",
        words=("type must be str, int, float, bool or JSONType",),
    ),
    Case(
        "step-defined-twice",
        "source",
        LINEAR.replace(
            "    @step\n    def end(",
            "    @step\n    def a(self):  # again\n        self.next(self.end)\n\n    @step\n    def end(",
        ),
        at="def a(self):  # again",
        step="a",
        words=("defined twice (first at line 10)", "later definition silently replaces"),
    ),
    # --- start and end ---
    Case(
        "no-start",
        "basic-steps",
        LINEAR.replace("def start(self):\n        self.next(self.a)", "def begin(self):\n        self.next(self.a)"),
        at="class F(FlowSpec)",
        words=("no 'start' step",),
    ),
    Case(
        "no-end",
        "basic-steps",
        LINEAR.replace("def end(self):", "def finish(self):"),
        at="class F(FlowSpec)",
        words=("no 'end' step",),
    ),
    Case(
        "end-has-next",
        "end-is-end",
        LINEAR.replace("    def end(self):\n        pass", "    def end(self):\n        self.next(self.a)  # from end"),
        at="# from end",
        step="end",
        words=("must not call self.next()",),
    ),
    Case(
        "end-is-a-join",
        "end-is-end",
        BRANCH.replace("def end(self):", "def end(self, inputs):"),
        at="def end(self, inputs)",
        step="end",
        words=("end cannot be a join", "add a join step before end"),
    ),
    # --- names ---
    Case(
        "step-name-reserved",
        "step-name-reserved",
        LINEAR.replace("self.a", "self.input").replace("def a(", "def input("),
        at="def input(",
        step="input",
        words=("'input' is a reserved word",),
    ),
    Case(
        "step-name-underscore",
        "step-name-format",
        LINEAR.replace("self.a", "self._a").replace("def a(", "def _a("),
        at="def _a(",
        step="_a",
        words=("cannot start with '_'",),
    ),
    Case(
        "step-name-uppercase",
        "step-name-format",
        LINEAR.replace("self.a", "self.Train").replace("def a(", "def Train("),
        at="def Train(",
        step="Train",
        words=("lowercase",),
    ),
    # --- arguments ---
    Case(
        "missing-self",
        "num-args",
        LINEAR.replace("def a(self):", "def a():"),
        at="def a():",
        step="a",
        words=("missing its 'self' argument",),
    ),
    Case(
        "too-many-arguments",
        "num-args",
        BRANCH.replace("def join(self, inputs):", "def join(self, inputs, extra):"),
        at="def join(self, inputs, extra)",
        step="join",
        words=("takes 3 arguments",),
    ),
    Case(
        "start-takes-inputs",
        "num-args",
        LINEAR.replace("def start(self):", "def start(self, inputs):"),
        at="def start(self, inputs)",
        step="start",
        words=("start takes no inputs",),
    ),
    Case(
        "join-and-split",
        "num-args",
        LINEAR.replace("def a(self):\n        self.next(self.end)", "def a(self, inputs):\n        self.next(self.b, self.end)"),
        at="def a(self, inputs)",
        step="a",
        words=("both a join", "and a split"),
    ),
    Case(
        "step-with-inputs-after-no-split",
        "join-without-split",
        LINEAR.replace("def a(self):", "def a(self, inputs):"),
        at="def a(self, inputs)",
        step="a",
        words=("takes inputs", "no split comes before it", "takes only 'self'"),
    ),
    # --- transitions ---
    Case(
        "no-next",
        "missing-next",
        LINEAR.replace("def a(self):\n        self.next(self.end)", "def a(self):\n        self.x = 1"),
        at="def a(self):",
        step="a",
        words=("must end with self.next(...) as its last statement",),
    ),
    Case(
        "next-not-last",
        "missing-next",
        LINEAR.replace(
            "def a(self):\n        self.next(self.end)",
            "def a(self):\n        self.next(self.end)\n        self.x = 1",
        ),
        at="def a(self):",
        step="a",
        words=("last statement",),
    ),
    Case(
        "next-inside-if",
        "missing-next",
        LINEAR.replace(
            "def a(self):\n        self.next(self.end)",
            "def a(self):\n        if True:\n            self.next(self.end)",
        ),
        at="def a(self):",
        step="a",
        words=("last statement",),
    ),
    Case(
        "next-names-a-string",
        "invalid-next",
        LINEAR.replace("self.next(self.a)", "self.next('a')"),
        at="self.next('a')",
        step="start",
        words=("self.<step>",),
    ),
    Case(
        "next-empty",
        "invalid-next",
        LINEAR.replace("self.next(self.a)", "self.next()"),
        at="self.next()",
        step="start",
        words=("must name the following step(s)",),
    ),
    Case(
        "next-unknown-keyword",
        "invalid-next",
        LINEAR.replace("self.next(self.a)", "self.next(self.a, num_parallel=4)"),
        at="num_parallel=4",
        step="start",
        words=("takes only steps", "keyword"),
    ),
    Case(
        "foreach-two-targets",
        "invalid-next",
        BRANCH.replace("self.next(self.a, self.b)", "self.next(self.a, self.b, foreach='xs')"),
        at="foreach='xs'",
        step="start",
        words=("a foreach goes to exactly one step", "names 2 ('a', 'b')"),
    ),
    Case(
        "foreach-not-a-string",
        "foreach-attribute",
        LINEAR.replace("self.next(self.a)", "self.next(self.a, foreach=items)").replace(
            "def a(self):\n        self.next(self.end)", "def a(self):\n        self.next(self.join)\n\n"
            "    @step\n    def join(self, inputs):\n        self.next(self.end)"
        ),
        at="foreach=items",
        step="start",
        words=("foreach= must name an attribute of self as a string",),
    ),
    Case(
        "foreach-not-an-identifier",
        "foreach-attribute",
        LINEAR.replace("self.next(self.a)", "self.next(self.a, foreach='my items')").replace(
            "def a(self):\n        self.next(self.end)", "def a(self):\n        self.next(self.join)\n\n"
            "    @step\n    def join(self, inputs):\n        self.next(self.end)"
        ),
        at="foreach='my items'",
        step="start",
        words=("foreach='my items' is not an attribute name",),
    ),
    Case(
        "same-branch-twice",
        "duplicate-next",
        BRANCH.replace("self.next(self.a, self.b)", "self.next(self.a, self.a)"),
        at="self.next(self.a, self.a)",
        step="start",
        words=("names 'a' more than once",),
    ),
    Case(
        "unknown-step",
        "unknown-step",
        LINEAR.replace("self.next(self.end)", "self.next(self.ned)"),
        at="self.next(self.ned)",
        step="a",
        words=("goes to 'ned', which is not a step", "did you mean 'end'?"),
    ),
    # --- shape ---
    Case(
        "orphan",
        "unreachable",
        LINEAR.replace("self.next(self.a)", "self.next(self.end)"),
        at="def a(self):",
        step="a",
        words=("cannot be reached from start",),
    ),
    Case(
        "loop-never-ends",
        "reaches-end",
        LINEAR.replace(
            "def a(self):\n        self.next(self.end)",
            "def a(self):\n        self.next(self.b)\n\n    @step\n    def b(self):\n        self.next(self.a)",
        ),
        at="def a(self):",
        step="a",
        words=("no path from this step reaches end", "the loop through 'a', 'b' never leaves"),
    ),
    Case(
        "cycle",
        "cycle",
        LINEAR.replace(
            "def a(self):\n        self.next(self.end)",
            "def a(self):\n        self.next(self.b)\n\n    @step\n    def b(self):\n        self.next(self.a)  # back",
        ),
        at="# back",
        step="b",
        words=("makes a loop: a -> b -> a",),
    ),
    Case(
        "merge-without-inputs",
        "join-needs-inputs",
        BRANCH.replace("def join(self, inputs):", "def join(self):"),
        at="def join(self):",
        step="join",
        words=("2 steps lead here ('a', 'b')", "def join(self, inputs)"),
    ),
    Case(
        "join-wrong-arity",
        "join-arity",
        BRANCH.replace(
            "def a(self):\n        self.next(self.join)",
            "def a(self):\n        self.next(self.a1, self.a2)\n\n"
            "    @step\n    def a1(self):\n        self.next(self.join)\n\n"
            "    @step\n    def a2(self):\n        self.next(self.join)",
        ),
        at="def join(self, inputs)",
        step="join",
        words=("closes the split at step 'a' (line 10)", "2 branches", "3 steps lead here ('a1', 'a2', 'b')"),
    ),
    Case(
        "split-never-joined",
        "split-join-balance",
        BRANCH.replace("self.next(self.join)", "self.next(self.end)"),
        at="def start(self):",
        step="start",
        words=("this split is never joined", "add a join step before end"),
    ),
    Case(
        "branches-at-different-joins",
        "split-join-balance",
        BRANCH.replace(
            "def b(self):\n        self.next(self.join)",
            "def b(self):\n        self.next(self.join2)\n\n"
            "    @step\n    def join2(self, inputs):\n        self.next(self.end)",
        ),
        at="def start(self):",
        step="start",
        words=("end at different joins ('join', 'join2')",),
    ),
    Case(
        "cross-join",
        "split-join-balance",
        """
class F(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.next(self.a1, self.a2)

    @step
    def b(self):
        self.next(self.b1, self.b2)

    @step
    def a1(self):
        self.next(self.cross)

    @step
    def b1(self):
        self.next(self.cross)

    @step
    def a2(self):
        self.next(self.cross2)

    @step
    def b2(self):
        self.next(self.cross2)

    @step
    def cross(self, inputs):
        self.next(self.join)

    @step
    def cross2(self, inputs):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        at="def cross(self, inputs)",
        step="cross",
        words=("gathers steps from unrelated splits", "'a'", "'b'"),
    ),
    Case(
        "step-shared-by-two-branches",
        "split-join-balance",
        BRANCH.replace(
            "def b(self):\n        self.next(self.join)",
            "def b(self):\n        self.next(self.p, self.q)\n\n"
            "    @step\n    def p(self):\n        self.next(self.shared)\n\n"
            "    @step\n    def q(self):\n        self.next(self.pq)\n\n"
            "    @step\n    def pq(self, inputs):\n        self.next(self.join)\n\n"
            "    @step\n    def shared(self):\n        self.next(self.pq)",
        ).replace("def a(self):\n        self.next(self.join)", "def a(self):\n        self.next(self.shared)"),
        at="def shared(self):",
        step="shared",
        words=("reached inside the split at 'start' and inside the split at 'b'", "belongs to one branch"),
    ),
    Case(
        "empty-foreach",
        "split-to-join",
        """
class F(FlowSpec):
    @step
    def start(self):
        self.xs = [1, 2]
        self.next(self.join, foreach='xs')

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
""",
        at="foreach='xs'",
        step="start",
        words=("foreach goes straight to the join 'join'",),
    ),
    # --- parameters ---
    Case(
        "parameter-names-differ-in-case",
        "parameter-unique",
        flow_class(
            LINEAR_STEPS, head="alpha = Parameter('alpha', default=1)\nbig_alpha = Parameter('Alpha', default=2)\n"
        ),
        at="Parameter('Alpha'",
        parameter="Alpha",
        words=("clashes with parameter 'alpha' (line 5)", "case-insensitive"),
    ),
    Case(
        "parameter-names-differ-by-dash",
        "parameter-unique",
        flow_class(
            LINEAR_STEPS, head="lr = Parameter('learning-rate', default=1)\nlr2 = Parameter('learning_rate', default=2)\n"
        ),
        at="Parameter('learning_rate'",
        parameter="learning_rate",
        words=("clashes with parameter 'learning-rate'",),
    ),
    Case(
        "parameter-name-with-space",
        "parameter-name-format",
        flow_class(LINEAR_STEPS, head="alpha = Parameter('my alpha', default=1)\n"),
        at="Parameter('my alpha'",
        parameter="my alpha",
        words=("only letters, digits",),
    ),
    Case(
        "parameter-name-reserved",
        "parameter-reserved",
        flow_class(LINEAR_STEPS, head="labels = Parameter('Tags', default='x')\n"),
        at="Parameter('Tags'",
        parameter="Tags",
        words=("reserved word",),
    ),
    Case(
        "parameter-attribute-reserved",
        "parameter-reserved",
        flow_class(LINEAR_STEPS, head="index = Parameter('position', default=0)\n"),
        at="Parameter('position'",
        parameter="position",
        words=("attribute 'index' is a reserved word",),
    ),
    Case(
        "parameter-named-like-a-step",
        "parameter-step-clash",
        flow_class(LINEAR_STEPS, head="count = Parameter('A', default=1)\n"),
        at="Parameter('A'",
        parameter="A",
        words=("its name 'a' is also a step's name (line 11)",),
    ),
    Case(
        "parameter-attribute-like-a-step",
        "parameter-step-clash",
        flow_class(LINEAR_STEPS, head="a = Parameter('count', default=1)\n"),
        at="Parameter('count'",
        parameter="count",
        words=("its attribute 'a' is also a step's name",),
    ),
    Case(
        "parameter-attribute-twice",
        "parameter-attribute-clash",
        flow_class(LINEAR_STEPS, head="alpha = Parameter('alpha', default=1)\nalpha = Parameter('beta', default=2)\n"),
        at="Parameter('beta'",
        parameter="beta",
        words=("attribute 'alpha' already holds parameter 'alpha' (line 5)",),
    ),
    Case(
        "parameter-name-is-another-attribute",
        "parameter-attribute-clash",
        flow_class(LINEAR_STEPS, head="alpha = Parameter('beta', default=1)\nbeta = Parameter('gamma', default=2)\n"),
        at="Parameter('beta'",
        parameter="beta",
        words=("also the attribute of parameter 'gamma' (line 6)",),
    ),
    Case(
        "parameter-default-wrong-type",
        "parameter-default-type",
        flow_class(LINEAR_STEPS, head="n = Parameter('n', type=int, default='ten')\n"),
        at="Parameter('n'",
        parameter="n",
        words=("default 'ten' is not a valid int",),
    ),
    Case(
        "parameter-default-bad-json",
        "parameter-default-type",
        flow_class(LINEAR_STEPS, head="cfg = Parameter('cfg', type=JSONType, default='{oops')\n"),
        at="Parameter('cfg'",
        parameter="cfg",
        words=("is not a valid json",),
    ),
    Case(
        "required-parameter-on-schedule",
        "parameter-required-schedule",
        flow_class(
            LINEAR_STEPS,
            head="alpha = Parameter('alpha', type=float, required=True)\n",
            decorators="@schedule(daily=True)\n",
        ),
        at="Parameter('alpha'",
        parameter="alpha",
        words=("required and has no default", "@schedule"),
    ),
    # --- the flow ---
    Case(
        "unix-cron",
        "schedule-cron",
        flow_class(LINEAR_STEPS, decorators="@schedule(cron='0 10 * * *')\n"),
        at="class F(FlowSpec)",
        words=("not an EventBridge cron expression", "6 required, 5 provided"),
    ),
    Case(
        "cron-both-days",
        "schedule-cron",
        flow_class(LINEAR_STEPS, decorators="@schedule(cron='0 10 * * MON *')\n"),
        at="class F(FlowSpec)",
        words=("One must be a question mark",),
    ),
    Case(
        "unknown-timezone",
        "schedule-timezone",
        flow_class(LINEAR_STEPS, decorators="@schedule(hourly=True, timezone='Europe/Amsterdm')\n"),
        at="@schedule(",
        words=("unknown time zone 'Europe/Amsterdm'", "IANA name"),
    ),
    Case(
        "trigger-maps-an-unknown-parameter",
        "trigger-parameters",
        flow_class(
            LINEAR_STEPS,
            head="alpha = Parameter('alpha', default=1.0)\n",
            decorators="@trigger(event={'name': 'data_updated', 'parameters': {'beta': 'b'}})\n",
        ),
        at="@trigger(",
        words=("'data_updated'", "'beta'", "not a parameter of the flow", "'alpha'"),
    ),
    Case(
        "triggered-required-parameter-unmapped",
        "parameter-required-trigger",
        flow_class(
            LINEAR_STEPS,
            head="alpha = Parameter('alpha', type=float, required=True)\n",
            decorators="@trigger(events=['a', {'name': 'b', 'parameters': ['alpha']}])\n",
        ),
        at="Parameter('alpha'",
        parameter="alpha",
        words=("required and has no default", "event 'a' does not map it"),
    ),
    Case(
        "trigger-on-own-finish",
        "trigger-on-own-finish",
        flow_class(LINEAR_STEPS, decorators="@trigger_on_finish(flows=['Other', 'F'])\n"),
        at="@trigger_on_finish(",
        words=("names F itself",),
    ),
    Case(
        "trigger-on-finish-project",
        "trigger-on-finish-project",
        flow_class(LINEAR_STEPS, decorators="@trigger_on_finish(flow={'name': 'Up', 'project': 'fraud'})\n"),
        at="@trigger_on_finish(",
        words=("'Up'", "project or its branch but not both", "no @project"),
    ),
    Case(
        "project-name",
        "source",
        flow_class(LINEAR_STEPS, decorators="@project(name='Fraud-Detection')\n"),
        at="@project(",
        words=("@project", "'Fraud-Detection'", "lowercase letters, digits and underscores"),
    ),
    Case(
        "project-branch-name",
        "source",
        flow_class(LINEAR_STEPS, decorators="@project(name='fraud', branch='New Idea')\n"),
        at="@project(",
        words=("@project", "branch", "'New Idea'", "lowercase letters"),
    ),
]

@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_rule_reports_the_fault(case: Case) -> None:
    source = flow_source(case.body)
    found = errors_of(source, case.rule)
    line = line_of(source, case.at)
    matching = [
        e
        for e in found
        if e.lineno == line
        and e.step == case.step
        and e.parameter == case.parameter
        and all(w in e.message for w in case.words)
    ]
    assert matching, f"expected a {case.rule} error at line {line}; got:\n" + "\n".join(
        f"{e.rule}: {e}" for e in lint_source(source)
    )


def test_every_rule_has_a_broken_flow() -> None:
    assert {c.rule for c in CASES} == {rule_id for rule_id, _ in RULES}


def test_rule_ids_are_unique() -> None:
    ids = [rule_id for rule_id, _ in RULES]
    assert len(ids) == len(set(ids))


# --- the error and the exception ------------------------------------------------------


def test_error_reads_line_then_subject() -> None:
    assert str(LintError("x", "goes nowhere", 12, step="a")) == "line 12: step 'a': goes nowhere"
    assert str(LintError("x", "bad", 3, parameter="alpha")) == "line 3: parameter 'alpha': bad"
    assert str(LintError("x", "no start", 0)) == "no start"


def test_error_is_frozen() -> None:
    e = LintError("x", "m", 1, step="a")
    with pytest.raises(Exception):
        e.lineno = 2  # type: ignore[misc]


def test_reader_problem_subject_is_split_from_the_message() -> None:
    source = flow_source(flow_class(decorate(LINEAR_STEPS, "a", "@retry(times=n)")))
    (error,) = errors_of(source, "source")
    assert error.step == "a"
    assert str(error) == (
        f"line {line_of(source, '@retry(times=n)')}: step 'a': @retry: argument 'times' must be a "
        "constant so the control plane can read it without running your code"
    )


def test_schedule_problem_has_no_subject() -> None:
    source = flow_source(flow_class(LINEAR_STEPS, decorators="@schedule(weekly='often')\n"))
    (error,) = errors_of(source, "source")
    assert error.step is None and error.parameter is None
    assert error.lineno == line_of(source, "@schedule(")
    assert error.message.startswith("@schedule: weekly")


def test_check_raises_with_every_error() -> None:
    source = flow_source(
        flow_class(
            LINEAR_STEPS.replace("self.next(self.end)", "self.next(self.ned)"),
            head="a1 = Parameter('x', default=1)\na2 = Parameter('X', default=2)\n",
        )
    )
    with pytest.raises(LintFailed) as info:
        check(read_source_flow(source))
    errors = info.value.errors
    assert [(e.rule, e.lineno, e.step or e.parameter) for e in errors] == [
        ("parameter-unique", line_of(source, "Parameter('X'"), "X"),
        ("unknown-step", line_of(source, "self.ned"), "a"),
    ]
    assert str(info.value) == "F has 2 errors:\n" + "\n".join(f"  {e}" for e in errors)


def test_check_returns_quietly_on_a_clean_flow() -> None:
    assert check(read_source_flow(flow_source(BRANCH))) is None


def test_errors_come_in_source_order() -> None:
    source = flow_source(
        LINEAR.replace("def a(self):", "def a():").replace("def end(self):\n        pass", "def end(self):\n        self.next(self.a)")
    )
    lines = [e.lineno for e in lint_source(source)]
    assert lines == sorted(lines) and len(lines) >= 2


def test_a_missing_start_does_not_crash_the_shape_rules() -> None:
    source = flow_source(
        """
class F(FlowSpec):
    @step
    def a(self):
        self.next(self.end)

    @step
    def end(self, inputs):
        self.next(self.a)
"""
    )
    rules = {e.rule for e in lint_source(source)}
    assert {"basic-steps", "end-is-end", "cycle"} <= rules
    assert "unreachable" not in rules  # nothing is reachable without a start: not news


def test_the_step_a_broken_next_meant_is_not_called_an_orphan() -> None:
    # end is unreachable only because a's self.next is missing: report the cause alone.
    source = flow_source(LINEAR.replace("def a(self):\n        self.next(self.end)", "def a(self):\n        pass"))
    assert [(e.rule, e.step) for e in lint_source(source)] == [("missing-next", "a")]


def test_a_join_missing_inputs_is_reported_once() -> None:
    # Not also as a split left open: the merge is walked as the join it was meant to be.
    source = flow_source(BRANCH.replace("def join(self, inputs):", "def join(self):"))
    assert [(e.rule, e.step) for e in lint_source(source)] == [("join-needs-inputs", "join")]


def test_an_orphan_leading_into_a_step_does_not_make_it_a_join() -> None:
    source = flow_source(
        LINEAR.replace("    @step\n    def end(", "    @step\n    def stray(self):\n        self.next(self.a)\n\n    @step\n    def end(")
    )
    assert [(e.rule, e.step) for e in lint_source(source)] == [("unreachable", "stray")]


def test_a_loop_back_is_not_mistaken_for_a_join() -> None:
    source = flow_source(
        LINEAR.replace("def a(self):\n        self.next(self.end)", "def a(self):\n        self.next(self.b)\n\n"
                       "    @step\n    def b(self):\n        self.next(self.a, self.end)")
    )
    errors = lint_source(source)
    assert "join-needs-inputs" not in {e.rule for e in errors}
    assert [e.rule for e in errors if e.rule == "cycle"] == ["cycle"]


def test_lint_is_fast_on_many_diamonds() -> None:
    # Metaflow's walk visits every path: 2**30 here. Ours visits each step once.
    parts = ["class F(FlowSpec):", "    @step", "    def start(self):", "        self.next(self.s0)"]
    n = 30
    for i in range(n):
        nxt = f"s{i + 1}" if i + 1 < n else "end"
        parts += [
            f"    @step\n    def s{i}(self):\n        self.next(self.l{i}, self.r{i})",
            f"    @step\n    def l{i}(self):\n        self.next(self.j{i})",
            f"    @step\n    def r{i}(self):\n        self.next(self.j{i})",
            f"    @step\n    def j{i}(self, inputs):\n        self.next(self.{nxt})",
        ]
    parts += ["    @step\n    def end(self):\n        pass"]
    source = flow_source("\n".join(parts) + "\n")
    began = time.perf_counter()
    assert lint_source(source) == []
    assert time.perf_counter() - began < 30  # a guard: the exponential walk would take hours


# --- flows that must lint clean ------------------------------------------------------------


@pytest.mark.parametrize(
    "path", sorted(SHARED_FLOWS.glob("*.py")), ids=lambda p: p.name
)
def test_shared_flows_lint_clean(path: Path) -> None:
    assert lint(read_source_flow(path.read_text(), str(path))) == []


def test_all_five_shared_flows_are_checked() -> None:
    assert len(sorted(SHARED_FLOWS.glob("*.py"))) == 5


# The shared shapes, and two more only lint needs to see clean.
CLEAN = {
    **{name: flow_class(steps) for name, steps in VALID_SHAPES.items()},
    "two-diamonds-in-a-row": flow_class(
        BRANCH_STEPS.replace(
            "def join(self, inputs):\n    self.next(self.end)",
            """def join(self, inputs):
    self.next(self.mid)

@step
def mid(self):
    self.next(self.c, self.d)

@step
def c(self):
    self.next(self.join2)

@step
def d(self):
    self.next(self.join2)

@step
def join2(self, inputs):
    self.next(self.end)""",
        )
    ),
    "parameters-decorators-and-schedule": flow_class(
        decorate(START_END, "start", "@retry(times=2)\n@catch(var='err')"),
        head="""
        alpha = Parameter('alpha', help='Learning rate', default=0.01)
        size: int = Parameter('size', type=int, required=True, default=3)
        cfg = Parameter('cfg', type=JSONType, default='{"a": 1}')

        """,
        decorators="@schedule(cron='0 10 * * ? *')\n",
    ),
}


@pytest.mark.parametrize("shape", sorted(CLEAN))
def test_valid_shapes_lint_clean(shape: str) -> None:
    source = flow_source(CLEAN[shape])
    assert lint_source(source) == [], [str(e) for e in lint_source(source)]
    assert_runnable(read_source_flow(source).graph)


def test_a_long_chain_of_steps() -> None:
    n = 1500
    parts = ["class F(FlowSpec):", "    @step\n    def start(self):\n        self.next(self.s0)"]
    for i in range(n):
        nxt = f"s{i + 1}" if i + 1 < n else "end"
        parts.append(f"    @step\n    def s{i}(self):\n        self.next(self.{nxt})")
    parts.append("    @step\n    def end(self):\n        self.next(self.s0)")
    source = flow_source("\n".join(parts) + "\n")
    # 1,500 steps deep without a RecursionError; how fast is the bench's business (validation
    # section), not a timed assertion's on a shared machine.
    errors = lint_source(source)
    assert [(e.rule, e.step) for e in errors] == [("end-is-end", "end"), ("cycle", "end")]


# --- whatever the shape, lint answers (and never crashes) -------------------------------------

NAMES = ["start", "a", "b", "c", "d", "end"]


@st.composite
def random_flows(draw: st.DrawFn) -> str:
    lines = ["class F(FlowSpec):"]
    for name in draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=6, unique=True)):
        args = draw(st.sampled_from(["self", "self, inputs", "", "self, inputs, x"]))
        outs = draw(st.lists(st.sampled_from(NAMES + ["nowhere"]), max_size=3))
        keyword = draw(st.sampled_from([[], ["foreach='xs'"], ["foreach=xs"], ["num_parallel=2"]]))
        call = "self.next(" + ", ".join([f"self.{o}" for o in outs] + keyword) + ")"
        tail = draw(st.sampled_from([call, "pass"]))
        lines += ["    @step", f"    def {name}({args}):", "        " + tail]
    return "\n".join(lines) + "\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_flows())
def test_lint_handles_any_shape(body: str) -> None:
    sf = read_source_flow(flow_source(body))
    errors = lint(sf)
    rule_ids = {rule_id for rule_id, _ in RULES}
    for e in errors:
        assert e.rule in rule_ids
        assert e.step is None or e.step in sf.graph.steps
        assert e.lineno > 0
    if not errors:
        assert_runnable(sf.graph)


def assert_runnable(graph) -> None:
    """What the runtime and the compiler rely on, checked independently of lint."""
    steps = graph.steps
    assert "start" in steps and steps["end"].out_funcs == []
    assert all(node.out_funcs for name, node in steps.items() if name != "end")
    # Acyclic and all reachable: Kahn's order from start covers every step.
    indegree = {n: len(node.in_funcs) for n, node in steps.items()}
    order, ready = [], ["start"]
    assert indegree["start"] == 0
    while ready:
        n = ready.pop()
        order.append(n)
        for out in steps[n].out_funcs:
            indegree[out] -= 1
            if indegree[out] == 0:
                ready.append(out)
    assert sorted(order) == sorted(steps)
    # Every split is closed by one join gathering one input per branch.
    joins = [n for n, node in steps.items() if node.type == "join"]
    closed = {}
    for name, node in steps.items():
        if node.type in ("split", "foreach"):
            join = node.matching_join
            assert join is not None and steps[join].type == "join"
            assert len(steps[join].in_funcs) == (1 if node.type == "foreach" else len(node.out_funcs))
            closed[join] = name
    assert sorted(closed) == sorted(joins)


@st.composite
def valid_flows(draw: st.DrawFn) -> dict[str, dict]:
    """Random nestings of linear steps, splits (2-3 branches) and foreaches."""
    steps: dict[str, dict] = {}

    def new(args: str = "self") -> str:
        name = f"s{len(steps)}"
        steps[name] = {"args": args, "outs": [], "foreach": False}
        return name

    def sequence(depth: int) -> tuple[str, str]:
        first = last = ""
        for _ in range(draw(st.integers(1, 3))):
            head, tail = block(depth)
            if last:
                steps[last]["outs"] = [head]
            first, last = first or head, tail
        return first, last

    def block(depth: int) -> tuple[str, str]:
        kind = draw(st.sampled_from(["linear", "split", "foreach"] if depth < 3 else ["linear"]))
        if kind == "linear":
            name = new()
            return name, name
        head, join = new(), new("self, inputs")
        steps[head]["foreach"] = kind == "foreach"
        for _ in range(1 if kind == "foreach" else draw(st.integers(2, 3))):
            first, last = sequence(depth + 1)
            steps[head]["outs"].append(first)
            steps[last]["outs"] = [join]
        return head, join

    steps["start"] = {"args": "self", "outs": [], "foreach": False}
    first, last = sequence(0)
    steps["start"]["outs"] = [first]
    steps[last]["outs"] = ["end"]
    steps["end"] = {"args": "self", "outs": [], "foreach": False}
    return steps


def emit(steps: dict[str, dict]) -> str:
    lines = ["class F(FlowSpec):"]
    for name, s in steps.items():
        if s["outs"]:
            extra = [f"foreach='xs'"] if s["foreach"] else []
            tail = "self.next(" + ", ".join([f"self.{o}" for o in s["outs"]] + extra) + ")"
        else:
            tail = "pass"
        lines += ["    @step", f"    def {name}({s['args']}):", f"        {tail}"]
    return "\n".join(lines) + "\n"


@settings(max_examples=75, deadline=None)
@given(valid_flows())
def test_every_valid_nesting_lints_clean(steps: dict[str, dict]) -> None:
    source = flow_source(emit(steps))
    assert lint_source(source) == [], [str(e) for e in lint_source(source)]
    assert_runnable(read_source_flow(source).graph)


@settings(max_examples=75, deadline=None)
@given(valid_flows(), st.data())
def test_every_broken_nesting_is_caught(steps: dict[str, dict], data: st.DataObject) -> None:
    joins = [n for n, s in steps.items() if s["args"] == "self, inputs"]
    plain = [n for n, s in steps.items() if s["args"] == "self" and n not in ("start", "end")]
    mutations = ["loop back to start", "drop a next"]
    if joins:
        mutations.append("join without inputs")
    if plain:
        mutations.append("inputs on a plain step")
    mutation = data.draw(st.sampled_from(mutations))
    if mutation == "join without inputs":
        steps[data.draw(st.sampled_from(joins))]["args"] = "self"
    elif mutation == "inputs on a plain step":
        steps[data.draw(st.sampled_from(plain))]["args"] = "self, inputs"
    elif mutation == "loop back to start":
        steps[data.draw(st.sampled_from([n for n in steps if n != "end"]))]["outs"] = ["start"]
    else:
        steps[data.draw(st.sampled_from([n for n in steps if n != "end"]))]["outs"] = []
    assert lint_source(flow_source(emit(steps))), mutation
