"""@trigger and @trigger_on_finish: Metaflow's argument forms, read at import and from source alike."""

from __future__ import annotations

import pytest

from flowplane import FlowSpec, step, trigger, trigger_on_finish
from flowplane.decorators import DecoratorArgumentError
from flowplane.graph import read_source_flow
from flowplane.lint import lint
from flowplane.manifest import GraphSpec, TriggerOnFinishSpec, TriggerSpec
from tests.support.flow_sources import LINEAR, flow_class, flow_source, line_of


def _events(spec: TriggerSpec) -> list[tuple[str, dict[str, str]]]:
    return [(e.name, dict(e.parameters)) for e in spec.events]


@pytest.mark.parametrize(
    "kwargs, events",
    [
        ({"event": "foo"}, [("foo", {})]),
        ({"events": ["foo", "bar"]}, [("foo", {}), ("bar", {})]),
        ({"event": {"name": "foo", "parameters": {"flow_param": "event_field"}}}, [("foo", {"flow_param": "event_field"})]),
        # Metaflow: a list of names and (parameter, field) pairs means the same as the dict
        ({"event": {"name": "foo", "parameters": ["common_name", ("flow_param", "event_field")]}},
         [("foo", {"common_name": "common_name", "flow_param": "event_field"})]),
        ({"events": [{"name": "foo", "parameters": {"a": "x"}}, {"name": "bar", "parameters": {"b": "y"}}]},
         [("foo", {"a": "x"}), ("bar", {"b": "y"})]),
    ],
)
def test_trigger_takes_metaflows_forms(kwargs, events) -> None:
    @trigger(**kwargs)
    class F(FlowSpec):
        pass

    assert _events(F._flowplane_trigger) == events
    assert F._flowplane_trigger.any is False


def test_any_is_an_option_and_a_spec_round_trips() -> None:
    spec = TriggerSpec(events=["a", "b"], options={"any": True})
    assert spec.any is True
    assert TriggerSpec.model_validate(spec.model_dump()) == spec
    finish = TriggerOnFinishSpec(flows=["A", "B"], options={"any": True})
    assert TriggerOnFinishSpec.model_validate(finish.model_dump()) == finish


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({}, "needs event= or events="),
        ({"event": "a", "events": ["b"]}, "not both"),
        ({"event": "has space"}, "should match pattern"),
        ({"events": ["a", "a"]}, "'a' is named twice"),
        ({"event": "a", "options": {"all": True}}, "unknown option(s) 'all'"),
        ({"event": {"name": "a", "parameters": [("x", "y", "z")]}}, "neither a name nor a (parameter, payload field) pair"),
        ({"event": lambda context: "a"}, "not functions"),
    ],
)
def test_trigger_refuses_what_it_cannot_use(kwargs, words) -> None:
    with pytest.raises(DecoratorArgumentError, match=None) as e:
        trigger(**kwargs)
    assert words in str(e.value) and str(e.value).startswith("@trigger")


def test_trigger_on_finish_forms_and_refusals() -> None:
    @trigger_on_finish(flow="FirstFlow")
    class One(FlowSpec):
        pass

    @trigger_on_finish(flows=["FirstFlow", "OtherFlow"])
    class Two(FlowSpec):
        pass

    assert [f.name for f in One._flowplane_trigger_on_finish.flows] == ["FirstFlow"]
    assert [f.name for f in Two._flowplane_trigger_on_finish.flows] == ["FirstFlow", "OtherFlow"]
    # Metaflow's project-qualified forms: project.branch.Flow (the branch may hold dots), or a dict.
    @trigger_on_finish(flows=["proj.user.bob.FirstFlow", {"name": "OtherFlow", "project": "proj",
                                                           "project_branch": "prod"}])
    class Three(FlowSpec):
        pass

    flows = Three._flowplane_trigger_on_finish.flows
    assert [(f.project, f.branch, f.name) for f in flows] == [("proj", "user.bob", "FirstFlow"),
                                                             ("proj", "prod", "OtherFlow")]
    assert [f.qualified for f in flows] == ["proj.user.bob.FirstFlow", "proj.prod.OtherFlow"]
    for kwargs, words in [
        ({"flow": "proj.FirstFlow"}, "as FlowName or as project.branch.FlowName"),
        ({"flow": "proj.dev.FirstFlow"}, "'dev' is not a project branch"),
        ({"flow": "Proj.prod.FirstFlow"}, "'Proj' must contain only lowercase letters"),
        ({"flow": "not-a-class"}, "is not a flow's class name"),
        ({"flows": "FirstFlow"}, "flows= takes a list"),
    ]:
        with pytest.raises(DecoratorArgumentError) as e:
            trigger_on_finish(**kwargs)
        assert words in str(e.value), str(e.value)
    with pytest.raises(DecoratorArgumentError, match="keyword arguments only"):
        trigger("foo")


def test_the_graph_reads_triggers_from_source_with_their_line() -> None:
    source = flow_source(flow_class(
        LINEAR, head="alpha = Parameter('alpha', default=1.0)\n",
        decorators="@trigger(event={'name': 'data_updated', 'parameters': {'alpha': 'value'}}, options={'any': True})\n"
                   "@trigger_on_finish(flow='FirstFlow')\n",
    ))
    flow = read_source_flow(source, "flow.py")
    assert not flow.problems and not lint(flow)
    graph = flow.graph
    assert _events(graph.trigger) == [("data_updated", {"alpha": "value"})] and graph.trigger.any
    assert graph.trigger.lineno == line_of(source, "@trigger(")
    assert [f.name for f in graph.trigger_on_finish.flows] == ["FirstFlow"]
    # The control plane compares the manifest's graph with the source's: triggers are part of it.
    structure = graph.structure()
    assert structure["trigger"]["events"][0]["name"] == "data_updated"
    assert structure["trigger_on_finish"]["flows"] == [{"name": "FirstFlow", "project": None, "branch": None}]
    assert GraphSpec.model_validate(graph.model_dump()) == graph


@pytest.mark.parametrize(
    "decorators, at, words",
    [
        ("@trigger(event='a')\n@trigger(event='b')\n", "@trigger(event='b')", "@trigger is given twice"),
        ("@trigger(events=[])\n", "@trigger(", "@trigger needs event= or events="),
        ("@trigger(event=EVENT_NAME)\n", "@trigger(", "must be a constant"),
        ("@trigger_on_finish(flow='p.b.FirstFlow')\n", "@trigger_on_finish(", "'b' is not a project branch"),
    ],
)
def test_bad_triggers_in_source_are_problems_with_their_line(decorators, at, words) -> None:
    source = flow_source(flow_class(LINEAR, decorators=decorators))
    problems = read_source_flow(source, "flow.py").problems
    assert any(words in message and line == line_of(source, at) for line, message in problems), problems
