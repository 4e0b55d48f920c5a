"""@project's branches and deployment names (flowplane/projects.py), as Metaflow forms them."""

from __future__ import annotations

import pytest

from flowplane.projects import (
    ProjectError,
    ProjectInfo,
    is_deployment_name,
    resolve,
    split_qualified,
)
from tests.support.flow_sources import LINEAR, flow_class, flow_source


@pytest.mark.parametrize("given, expected", [
    ({}, "user.alice"),
    ({"branch": "exp"}, "test.exp"),
    ({"production": True}, "prod"),
    ({"branch": "exp", "production": True}, "prod.exp"),
    ({"decorator_branch": "exp"}, "test.exp"),
    ({"decorator_branch": "exp", "branch": "exp"}, "test.exp"),  # the same value twice is no clash
    ({"decorator_production": True}, "prod"),
    ({"decorator_branch": "exp", "production": True}, "prod.exp"),
])
def test_the_branch_is_metaflows(given, expected) -> None:
    info = resolve("fraud", "ScoreFlow", "alice", **given)
    assert info.branch == expected
    assert info.project_flow_name == f"fraud.{expected}.ScoreFlow"
    assert info.is_production == expected.startswith("prod")
    assert info.is_user_branch == expected.startswith("user.")
    assert info.tags() == ["project:fraud", f"project_branch:{expected}"]
    assert is_deployment_name(info.project_flow_name)
    assert split_qualified(info.project_flow_name) == ("fraud", expected, "ScoreFlow")


@pytest.mark.parametrize("project, user, given, words", [
    ("Fraud", "alice", {}, "'Fraud' must contain only lowercase letters, digits and underscores"),
    ("", "alice", {}, "is empty"),
    ("f" * 129, "alice", {}, "129 characters; at most 128"),
    ("fraud", "alice", {"branch": "New-Idea"}, "the branch name 'New-Idea' must contain only lowercase"),
    ("fraud", "alice", {"decorator_branch": "a", "branch": "b"}, "both by @project(branch='a') and by --branch b"),
    ("fraud", "a b@c", {}, "the user name 'a b@c' cannot name the branch"),
    ("f" * 128, "alice", {"branch": "b" * 128}, "characters; at most 255"),
])
def test_what_cannot_name_a_branch_is_refused_saying_why(project, user, given, words) -> None:
    with pytest.raises(ProjectError) as e:
        resolve(project, "ScoreFlow", user, **given)
    assert words in str(e.value)


def test_current_shows_the_branch() -> None:
    assert ProjectInfo("fraud", "prod.exp", "ScoreFlow").current() == {
        "project_name": "fraud", "branch_name": "prod.exp", "is_production": True, "is_user_branch": False,
        "project_flow_name": "fraud.prod.exp.ScoreFlow",
    }


def test_deployment_names_of_projects_and_others() -> None:
    assert is_deployment_name("fraud.user.j.doe.ScoreFlow")  # a user name may hold dots
    for name in ("ScoreFlow", "fraud.ScoreFlow", "fraud.dev.ScoreFlow", "Fraud.prod.ScoreFlow", "fraud.prod.Score-Flow",
                 "f" * 128 + ".prod." + "F" * 128):
        assert not is_deployment_name(name), name


def _context(tmp_path, decorators: str, **options):
    from flowplane.context import FlowContext
    from tests.support.control_plane import load_flow_class

    path = tmp_path / "f.py"
    path.write_text(flow_source(flow_class(LINEAR, decorators=decorators)))
    ctx = FlowContext.for_class(load_flow_class(path, "F"))
    ctx.user = "alice"
    for key, value in options.items():
        setattr(ctx, key, value)
    return ctx


def test_the_flow_context_names_the_deployment(tmp_path) -> None:
    ctx = _context(tmp_path, "@flowplane.project(name='fraud')\n", branch_option="exp")
    assert ctx.deployment_name() == "fraud.test.exp.F"
    with pytest.raises(ProjectError, match="--name is not supported"):
        ctx.deployment_name("Mine")
    plain = _context(tmp_path, "")
    assert plain.project() is None and plain.deployment_name("Mine") == "Mine" and plain.deployment_name() == "F"
    with pytest.raises(ProjectError, match="this flow has no @project"):
        _context(tmp_path, "", production_option=True).deployment_name()
    # A @project lint refuses is named, with its line, rather than "no @project".
    with pytest.raises(ProjectError, match=r"not valid \(line 4: @project: name: 'X'"):
        _context(tmp_path, "@flowplane.project(name='X')\n", branch_option="exp").project()
