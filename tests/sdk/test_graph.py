"""Reading a flow's graph, decorators, parameters and schedule from its source."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowplane.decorators import parse_with_option
from flowplane.graph import FlowSourceError, graph_from_source, read_source_flow
from flowplane.manifest import CatchSpec, ResourcesSpec, RetrySpec, TimeoutSpec
from flowplane.parameters import Parameter
from tests.support.flow_sources import (
    FOREACH_SPLIT_FOREACH,
    HEADER,
    LINEAR,
    SPLIT3,
    START_END,
    decorate,
    flow_class,
    flow_source,
    line_of,
)
from tests.support.shared_flows import SHARED_FLOWS  # noqa: E402

NESTED = flow_class(FOREACH_SPLIT_FOREACH)


def read(body: str):
    return read_source_flow(flow_source(body), "flow.py")


def line_in(body: str, text: str) -> int:
    return line_of(flow_source(body), text)


# --- step types and links ---------------------------------------------------------------


def test_step_types_in_a_nested_flow() -> None:
    graph = read(NESTED).graph
    assert {n: s.type for n, s in graph.steps.items()} == {
        "start": "foreach",
        "row": "split",
        "left": "foreach",
        "cell": "linear",
        "join_cols": "join",
        "right": "linear",
        "meet": "join",
        "join_rows": "join",
        "end": "end",
    }
    assert graph["start"].foreach_param == "rows"
    assert graph["left"].foreach_param == "cols"
    assert graph["row"].foreach_param is None


def test_start_with_a_linear_next_is_start() -> None:
    graph = read(flow_class(START_END)).graph
    assert graph["start"].type == "start"
    assert graph["end"].type == "end"


def test_out_and_in_funcs() -> None:
    graph = read(NESTED).graph
    assert graph["row"].out_funcs == ["left", "right"]
    assert graph["meet"].in_funcs == ["join_cols", "right"]
    assert graph["start"].in_funcs == []
    assert graph["end"].out_funcs == []
    assert graph["end"].in_funcs == ["join_rows"]


def test_split_parents_as_metaflow() -> None:
    graph = read(NESTED).graph
    parents = {n: s.split_parents for n, s in graph.steps.items()}
    assert parents == {
        "start": [],
        "row": ["start"],
        "left": ["start", "row"],
        "cell": ["start", "row", "left"],
        # A join keeps the split it closes as its last parent.
        "join_cols": ["start", "row", "left"],
        "right": ["start", "row"],
        "meet": ["start", "row"],
        "join_rows": ["start"],
        "end": [],
    }


def test_matching_join() -> None:
    graph = read(NESTED).graph
    assert {n: s.matching_join for n, s in graph.steps.items() if s.matching_join} == {
        "start": "join_rows",
        "row": "meet",
        "left": "join_cols",
    }


def test_step_details() -> None:
    body = NESTED
    graph = read(body).graph
    rows = graph["join_rows"]
    assert rows.num_args == 2
    assert rows.lineno == line_in(body, "def join_rows(")
    assert rows.has_tail_next and not rows.invalid_tail_next
    assert rows.tail_next_lineno == line_in(body, "All rows together") + 1
    assert rows.doc == "All rows together."
    assert graph["end"].has_tail_next is False


def test_three_way_split() -> None:
    graph = read(flow_class(SPLIT3)).graph
    assert graph["start"].type == "split"
    assert graph["join"].in_funcs == ["x", "y", "z"]
    assert graph["start"].matching_join == "join"
    assert graph["x"].split_parents == ["start"]


@pytest.mark.parametrize(
    "tail, kind, outs",
    [
        ("self.next('end')", "linear", []),
        ("self.next()", "linear", []),
        ("self.next(self.end, num_parallel=3)", "linear", ["end"]),
        ("self.next(self.a, self.end, foreach='xs')", "foreach", ["a", "end"]),
        ("self.next(self.end, foreach=xs)", "foreach", ["end"]),
    ],
)
def test_malformed_next_is_invalid(tail: str, kind: str, outs: list[str]) -> None:
    sf = read(flow_class(LINEAR.replace("def a(self):\n    self.next(self.end)", f"def a(self):\n    {tail}")))
    a = sf.graph["a"]
    assert (a.has_tail_next, a.invalid_tail_next, a.type, a.out_funcs) == (True, True, kind, outs)


def test_start_with_an_invalid_next_is_still_start() -> None:
    graph = read(flow_class(START_END.replace("self.next(self.end)", "self.next('end')"))).graph
    assert graph["start"].type == "start"
    assert graph["start"].invalid_tail_next


def test_end_with_a_next_is_still_end() -> None:
    graph = read(flow_class(START_END.replace("pass", "self.next(self.start)"))).graph
    assert graph["end"].type == "end"
    assert graph["end"].has_tail_next and graph["end"].out_funcs == ["start"]


def test_a_cycle_is_read_without_hanging() -> None:
    graph = read(flow_class(START_END.replace("pass", "self.next(self.start)"))).graph
    assert graph["start"].in_funcs == ["end"]


def test_step_without_next_and_with_inputs_is_a_join() -> None:
    graph = read(flow_class(START_END.replace("def end(self):", "def other(self, inputs):\n    pass\n\n@step\ndef end(self):"))).graph
    assert graph["other"].type == "join"
    assert graph["other"].has_tail_next is False


def test_only_step_methods_are_steps() -> None:
    graph = read(flow_class(START_END + "\ndef helper(self):\n    self.next(self.end)\n")).graph
    assert set(graph.steps) == {"start", "end"}


def test_duplicate_step_is_a_problem() -> None:
    body = flow_class(START_END.replace("def end(self):", "def end(self):  # first") + "\n@step\ndef end(self):  # again\n    pass\n")
    sf = read(body)
    assert sf.problems == [
        (
            line_in(body, "# again"),
            f"step 'end': defined twice (first at line {line_in(body, '# first')}); "
            "the later definition silently replaces the earlier one",
        )
    ]
    assert sf.graph["end"].lineno == line_in(body, "# again")


# --- decorators ---------------------------------------------------------------------------


def test_decorators_read_from_source() -> None:
    sf = read(
        flow_class(
            """
            @retry(times=2, minutes_between_retries=0)
            @catch(var='failure', print_exception=False)
            @timeout(minutes=5)
            @resources(cpu=2, memory=8000, gpu=1)
            @step
            def start(self):
                self.next(self.end)

            @flowplane.retry
            @step
            def end(self):
                pass
            """
        )
    )
    assert sf.problems == []
    assert sf.graph["start"].decorators == [
        RetrySpec(times=2, minutes_between_retries=0),
        CatchSpec(var="failure", print_exception=False),
        TimeoutSpec(minutes=5),
        ResourcesSpec(cpu=2, memory=8000, gpu=1),
    ]
    assert sf.graph["start"].decorator("timeout").total_seconds == 300
    # A bare decorator, written through the module, takes Metaflow's defaults.
    assert sf.graph["end"].decorators == [RetrySpec(times=3, minutes_between_retries=2)]
    assert sf.graph["end"].decorator("catch") is None


def test_with_decorators_apply_to_steps_without_one() -> None:
    graph = read(flow_class(decorate(START_END, "start", "@retry(times=1)"))).graph
    applied = graph.with_decorators([parse_with_option("retry:times=5"), parse_with_option("catch")])
    assert applied["start"].decorators == [RetrySpec(times=1), CatchSpec()]
    assert applied["end"].decorators == [RetrySpec(times=5), CatchSpec()]
    # The original graph is unchanged, and no --with is a no-op.
    assert graph["end"].decorators == []
    assert graph.with_decorators([]) is graph


@pytest.mark.parametrize(
    "decorator, message",
    [
        ("@retry(times=TIMES)", "step 'start': @retry: argument 'times' must be a constant"),
        ("@retry(times={[1]: 2})", "step 'start': @retry: argument 'times' must be a constant"),
        ("@retry(3)", "step 'start': @retry: pass arguments by name (keyword=value)"),
        ("@retry(**opts)", "step 'start': @retry: **kwargs cannot be read from source"),
        ("@retry(times=-1)", "step 'start': @retry: times: Input should be greater than or equal to 0"),
        ("@timeout()", "step 'start': @timeout: @timeout needs a positive"),
        ("@catch(var='not valid')", "step 'start': @catch: var: var must be a Python identifier"),
        ("@resources(memory=10)", "step 'start': @resources: memory: Input should be greater than or equal to 128"),
        ("@retry\n@retry(times=1)", "step 'start': @retry is given twice"),
    ],
)
def test_bad_decorator_arguments_are_problems_naming_the_line(decorator: str, message: str) -> None:
    body = flow_class(decorate(START_END, "start", decorator))
    sf = read(body)
    assert len(sf.problems) == 1, sf.problems
    lineno, text = sf.problems[0]
    assert text.startswith(message), text
    assert lineno == line_in(body, decorator.splitlines()[-1])


# --- parameters ---------------------------------------------------------------------------


def test_parameters_with_types_defaults_and_help() -> None:
    sf = read(
        flow_class(
            START_END,
            head="""
            alpha = Parameter('alpha', help='Learning rate', default=0.01)
            epochs = Parameter('epochs', default=10)
            verbose = Parameter('verbose', default=False)
            label = Parameter('label', default='x')
            layers = Parameter('layers', default=[1, 2])
            config = Parameter('config', type=JSONType, default='{"a": 1}')
            ratio = Parameter('ratio', type=float, default=1)
            size = Parameter('size', type=int, required=True)
            """,
        )
    )
    assert sf.problems == []
    got = {p.name: (p.attribute, p.type, p.default, p.has_default, p.required, p.deploy_time) for p in sf.parameters}
    assert got == {
        "alpha": ("alpha", "float", 0.01, True, False, False),
        "epochs": ("epochs", "int", 10, True, False, False),
        "verbose": ("verbose", "bool", False, True, False, False),
        "label": ("label", "str", "x", True, False, False),
        "layers": ("layers", "json", [1, 2], True, False, False),
        "config": ("config", "json", '{"a": 1}', True, False, False),
        "ratio": ("ratio", "float", 1, True, False, False),
        "size": ("size", "int", None, False, True, False),
    }
    assert sf.parameters[0].help == "Learning rate"
    assert [p.name for p in sf.parameters] == ["alpha", "epochs", "verbose", "label", "layers", "config", "ratio", "size"]


@pytest.mark.parametrize("default", [0.5, 3, True, "s", [1], {"a": 1}])
def test_type_inference_agrees_with_parameter(default: object) -> None:
    sf = read(flow_class(START_END, head=f"p = Parameter('p', default={default!r})\n"))
    assert sf.parameters[0].type == Parameter("p", default=default).type_name


def test_deploy_time_default() -> None:
    sf = read(
        "def who(context):\n    return context.user_name\n\n\n"
        + flow_class(START_END, head="info = Parameter('deployment_info', type=JSONType, default=who)\n")
    )
    (p,) = sf.parameters
    assert (p.name, p.attribute, p.type, p.deploy_time, p.has_default, p.default) == (
        "deployment_info",
        "info",
        "json",
        True,
        True,
        None,
    )


def test_parameter_written_in_other_ways() -> None:
    sf = read(
        flow_class(
            START_END,
            head="""
            positional = Parameter('positional', 0.5, float, 'the help', True)
            by_name = Parameter(name='by_name', default=2)
            annotated: int = Parameter('annotated', default=3)
            nothing = Parameter('nothing', default=None)
            not_a_parameter = 5
            """,
        )
    )
    got = {p.name: (p.type, p.default, p.has_default, p.help, p.required) for p in sf.parameters}
    assert got == {
        "positional": ("float", 0.5, True, "the help", True),
        "by_name": ("int", 2, True, None, False),
        "annotated": ("int", 3, True, None, False),
        # As Parameter.has_default: None is no default.
        "nothing": ("str", None, False, None, False),
    }


@pytest.mark.parametrize(
    "definition, message",
    [
        ("p = Parameter(NAME)", "parameter 'p': its name must be a string constant"),
        ("p = Parameter('p', type=list)", "parameter 'p': type must be str, int, float, bool or JSONType"),
        ("p = Parameter('p', default=(1, 2))", "parameter 'p': cannot infer a type from default (1, 2); pass type="),
        ("p = Parameter('p', required=FLAG)", "parameter 'p': argument 'required' must be a constant"),
        ("p = Parameter('p', help=123)", "parameter 'p': help: Input should be a valid string"),
        ("p = Parameter('p', **opts)", "parameter 'p': **kwargs cannot be read from source"),
    ],
)
def test_bad_parameter_definitions_are_problems(definition: str, message: str) -> None:
    body = flow_class(START_END, head=definition + "\n")
    sf = read(body)
    ((lineno, text),) = sf.problems
    assert lineno == line_in(body, definition)
    assert text.startswith(message), text


# --- @schedule ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "decorator, expression",
    [
        ("@schedule(weekly=True)", "cron(0 0 ? * SUN *)"),
        ("@schedule(daily=True)", "cron(0 0 * * ? *)"),
        ("@schedule()", "cron(0 0 * * ? *)"),
        ("@schedule", "cron(0 0 * * ? *)"),
        ("@schedule(hourly=True)", "cron(0 * * * ? *)"),
        ("@flowplane.schedule(hourly=True)", "cron(0 * * * ? *)"),
        ("@schedule(cron='0 10 * * ? *')", "cron(0 10 * * ? *)"),
        ("@schedule(cron='0 10 * * ? *', hourly=True, weekly=True)", "cron(0 10 * * ? *)"),
        ("@schedule(weekly=True, hourly=True)", "cron(0 0 ? * SUN *)"),
    ],
)
def test_schedule_mapping(decorator: str, expression: str) -> None:
    sf = read(flow_class(START_END, decorators=decorator + "\n"))
    assert sf.problems == []
    assert sf.graph.schedule is not None
    assert sf.graph.schedule.expression == expression


def test_schedule_timezone_is_kept() -> None:
    sf = read(flow_class(START_END, decorators="@schedule(daily=True, timezone='Europe/Paris')\n"))
    assert sf.graph.schedule.timezone == "Europe/Paris"


def test_no_schedule() -> None:
    assert read(flow_class(START_END)).graph.schedule is None


def test_non_constant_schedule_argument_names_the_line() -> None:
    body = flow_class(START_END, decorators="@schedule(cron=CRON)\n")
    sf = read(body)
    assert sf.problems == [
        (
            line_in(body, "@schedule(cron=CRON)"),
            "@schedule: argument 'cron' must be a constant so the control plane can read it without running your code",
        )
    ]


def test_invalid_schedule_argument_is_a_problem() -> None:
    body = flow_class(START_END, decorators="@schedule(hourly='sometimes')\n")
    sf = read(body)
    assert sf.graph.schedule is None
    ((lineno, message),) = sf.problems
    assert lineno == line_in(body, "@schedule(")
    assert message.startswith("@schedule: hourly: Input should be a valid boolean")


# --- errors reading the source ----------------------------------------------------------


def test_syntax_error_raises_with_its_line() -> None:
    source = "from flowplane import FlowSpec, step\n\nclass F(FlowSpec):\n    @step\n    def start(self)\n        pass\n"
    with pytest.raises(FlowSourceError) as info:
        read_source_flow(source)
    assert info.value.lineno == 5
    assert str(info.value).startswith("line 5: syntax error")


def test_no_flow_class() -> None:
    with pytest.raises(FlowSourceError, match="no class deriving from FlowSpec"):
        read_source_flow("class F:\n    pass\n")


def test_two_flow_classes_need_a_name() -> None:
    source = flow_source(flow_class(START_END) + "\n\n" + flow_class(START_END, "G"))
    with pytest.raises(FlowSourceError, match=r"more than one FlowSpec class \(F, G\)"):
        read_source_flow(source)
    assert read_source_flow(source, class_name="G").graph.flow_name == "G"
    with pytest.raises(FlowSourceError, match=r"no class H\(FlowSpec\)"):
        read_source_flow(source, class_name="H")


def test_class_details() -> None:
    sf = read(flow_class(START_END, head='"""The doc."""\n', decorators="@schedule\n"))
    assert sf.graph.flow_name == "F"
    assert sf.graph.doc == "The doc."
    assert sf.class_lineno == HEADER.count("\n") + 2


# --- the shared flows ---------------------------------------------------------------------


def shared(name: str):
    path = SHARED_FLOWS / name
    return read_source_flow(path.read_text(), str(path))


def test_shared_branch_flow() -> None:
    graph = shared("branch_flow.py").graph
    assert graph["start"].type == "split" and graph["start"].matching_join == "join"
    assert graph["join"].in_funcs == ["a", "b"]


def test_shared_foreach_flow() -> None:
    graph = shared("foreach_flow.py").graph
    assert graph["start"].type == "foreach" and graph["start"].foreach_param == "numbers"
    assert graph["square"].split_parents == ["start"]


def test_shared_hourly_flow() -> None:
    assert shared("hourly_flow.py").graph.schedule.expression == "cron(0 * * * ? *)"


def test_shared_parameter_flows() -> None:
    (alpha,) = shared("parameter_flow.py").parameters
    assert (alpha.name, alpha.type, alpha.default, alpha.help) == ("alpha", "float", 0.01, "Learning rate")
    (info,) = shared("deployment_info_flow.py").parameters
    assert (info.name, info.attribute, info.type, info.deploy_time) == ("deployment_info", "info", "json", True)


def test_graph_from_source_is_the_source_flows_graph() -> None:
    path = SHARED_FLOWS / "foreach_flow.py"
    assert graph_from_source(path.read_text()) == read_source_flow(path.read_text()).graph


def test_schedule_with_every_flag_off_means_no_schedule_as_in_metaflow():
    from flowplane.manifest import ScheduleSpec

    assert ScheduleSpec(daily=False).expression is None
    assert ScheduleSpec().expression == "cron(0 0 * * ? *)"
